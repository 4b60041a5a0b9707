// Early start against full synthesis and the plain route, over a shaped
// link, all measured in this one run (docs/early-start.md):
//
//   bench_early_start [--guest busybox|debian] [--mbit N] [ROUNDS]
//
// The launch VM runs an app (busybox: httpd on 127.0.0.1:8080 serving a
// small page; debian: the app step's http.server unit on 8080) started
// before its overlay is made. Each route fetches what it needs over HTTP
// from a server across an N Mbit/s link (default 25: tbf on the loopback
// of a network namespace of our own, docs/platform.md; this kernel has no
// netem, so no added latency), and the time counted is from the start until
// the app answers a request, asked from inside the guest through its test
// shell (busybox wget / python3 urllib against 127.0.0.1:8080):
//
//   early     cloudlet synthesize --early-start URL (the VM runs once the
//             overlay's disks and start block are here; memory by postcopy)
//   full      cloudlet synthesize URL (the VM runs once all of it is here)
//   plain     curl of the zstd patch of the launch save image and of the
//             compressed disk layers, zstd -d --patch-from, virsh restore
//             (no NIC swap: the stale NIC stays, as in the baseline)
//
// Also printed for early start: the pages QEMU asked for (demand faults),
// how many of them waited for the overlay, and the bytes fetched out of
// order (none: the overlay is read front to back; its start order is
// what keeps faults from waiting). Prints numbers and ratios; asserts
// nothing. Needs root, libvirt, ip and tc.
#include "workload.h"

#include <cloudlet.h>

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace bench;

namespace {

const char *kVirsh = "virsh -q -c qemu:///system ";
constexpr int kPort = 8099;

std::string app_question(Guest g) {
	if (g == Guest::Debian)
		return "python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/').read(); "
		       "print('answered')\"";
	return "wget -q -O - http://127.0.0.1:8080/index.html";
}

// Waits until domain `dom` exists and runs, then until its app answers;
// returns the time (now()) it did.
double wait_for_answer(const std::string &dom, Guest g, const std::atomic<bool> *failed = nullptr) {
	for (;;) {
		if (failed && *failed)
			return 0;
		std::string st = capture(std::string(kVirsh) + "domstate " + dom + " 2>/dev/null");
		if (st.rfind("running", 0) == 0)
			break;
		usleep(20000);
	}
	th_guest *guest = nullptr;
	for (int i = 0; th_guest_attach_domain(&guest, dom.c_str(), nullptr, nullptr) != 0; i++) {
		if (i > 500)
			die("cannot reach the shell of " + dom + ": " + th_error());
		usleep(20000);
	}
	char *out = th_guest_check(guest, app_question(g).c_str(), 300000);
	double t = now();
	if (!out || !strstr(out, "answered"))
		die("the app in " + dom + " did not answer: " + (out ? std::string(out) : std::string(th_error())));
	free(out);
	th_guest_forget(guest);
	return t;
}

struct Run {
	double answer = 0; // from the start
	cloudlet_synthesis_info *info = nullptr;
};

// cloudlet synthesize of the URL on a thread inside the namespace (libcurl's
// transfer thread inherits it; libvirt is a unix socket away), while this
// thread waits for the app.
Run synthesize(const Workload &w, const std::string &ns, const std::string &url, const std::string &name,
               bool early) {
	Run run;
	std::string err;
	std::atomic<bool> failed{false};
	double t0 = now();
	std::thread worker([&] {
		int fd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
			die("cannot enter network namespace " + ns);
		close(fd);
		cloudlet_synthesis_options o = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
		o.name = name.c_str();
		if (early)
			o.flags = CLOUDLET_SYNTHESIS_EARLY_START;
		if (cloudlet_synthesize(&run.info, w.ctx, url.c_str(), &o) != CLOUDLET_OK) {
			err = cloudlet_last_error_message();
			failed = true;
		}
	});
	double answered = wait_for_answer(name, w.guest, &failed);
	worker.join();
	if (!err.empty() || !run.info)
		die(name + ": " + err);
	run.answer = answered - t0;
	sh(std::string(kVirsh) + "destroy " + name + " >/dev/null");
	return run;
}

double plain(const Workload &w, const std::string &ns, const std::string &dl) {
	double t0 = now();
	std::string get = "ip netns exec " + ns + " curl -sf -o " + dl + "/";
	std::string from = " http://127.0.0.1:" + std::to_string(kPort) + "/";
	sh(get + "sav.zst" + from + "sav.zst");
	for (const auto &d : base_disks(w))
		sh(get + "layer-" + d + ".zst" + from + "layer-" + d + ".zst");
	unpack_plain_route(w, dl);
	sh(std::string(kVirsh) + "restore " + w.work + "/plain.sav --xml " + w.work + "/plain.xml --running >/dev/null");
	double answered = wait_for_answer(w.name, w.guest);
	sh(std::string(kVirsh) + "destroy " + w.name + " >/dev/null");
	return answered - t0;
}

} // namespace

int main(int argc, char **argv) {
	Guest guest = guest_from_args(argc, argv);
	int mbit = 25, rounds = 2;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--mbit") && i + 1 < argc)
			mbit = atoi(argv[++i]);
		else
			rounds = atoi(argv[i]);
	Workload w;
	make_workload(w, "bench-early", guest);
	const std::string &work = w.work;

	// The app, started before the overlay is made.
	if (guest == Guest::Busybox) {
		std::string start = "ip link set lo up && mkdir -p /ram/www && echo answered > /ram/www/index.html && "
		                    "busybox httpd -p 127.0.0.1:8080 -h /ram/www && sleep 0.5 && " +
		                    app_question(guest); // asked once here
		char *out = th_guest_check(w.launch, start.c_str(), 30000);
		if (!out)
			die(std::string("busybox httpd: ") + th_error());
		free(out);
	} else {
		char *out = th_guest_check(w.launch, app_question(guest).c_str(), 60000);
		if (!out)
			die(std::string("the app step's server: ") + th_error());
		free(out);
	}

	std::string serve = work + "/serve", dl = work + "/download";
	sh("mkdir -p " + serve + " " + dl);
	if (cloudlet_overlay_create(nullptr, w.ctx, w.name.c_str(), (serve + "/launch.ovl").c_str(), nullptr) !=
	    CLOUDLET_OK)
		die(cloudlet_last_error_message());
	uint64_t layers = make_plain_route_files(w); // stops the launch VM (virsh save)
	sh("ln -f " + work + "/sav.zst " + serve + "/sav.zst");
	for (const auto &d : base_disks(w))
		sh("ln -f " + work + "/layer-" + d + ".zst " + serve + "/layer-" + d + ".zst");

	std::string ns = "cltbe" + std::to_string(getpid());
	sh("ip netns add " + ns + " && ip netns exec " + ns + " ip link set lo mtu 1500 up && ip netns exec " + ns +
	   " tc qdisc add dev lo root tbf rate " + std::to_string(mbit) + "mbit burst 32kb latency 400ms");
	struct Cleanup {
		std::string ns;
		~Cleanup() {
			if (system(("ip netns pids " + ns + " | xargs -r kill; ip netns del " + ns).c_str()) != 0)
				fprintf(stderr, "could not remove network namespace %s\n", ns.c_str());
		}
	} cleanup{ns};
	sh("ip netns exec " + ns + " python3 -m http.server " + std::to_string(kPort) + " --bind 127.0.0.1 --directory " +
	   serve + " >/dev/null 2>&1 &");
	sh("for i in $(seq 100); do ip netns exec " + ns + " curl -sf -o /dev/null http://127.0.0.1:" +
	   std::to_string(kPort) + "/ && break; sleep 0.1; done");
	std::string url = "http://127.0.0.1:" + std::to_string(kPort) + "/launch.ovl";
	printf("guest %s; link %d Mbit/s; overlay %.1f MB; plain route: save image patch %.1f MB + disk layers %.1f MB\n",
	       guest_name(guest), mbit, double(size_of(serve + "/launch.ovl")) / 1e6, double(size_of(work + "/sav.zst")) / 1e6,
	       double(layers) / 1e6);

	std::vector<double> early, full, plain_t, running;
	printf("%-6s %-52s %10s\n", "round", "route", "answer s");
	for (int r = 0; r < rounds; r++) {
		auto run_early = [&] {
			Run x = synthesize(w, ns, url, "cltest-" + std::to_string(getpid()) + "-bee" + std::to_string(r), true);
			printf("%-6d %-52s %10.2f  (running after %.2f s of a %.2f s download; %llu pages asked for, %llu of "
			       "them waited for the overlay; 0 bytes fetched out of order)\n",
			       r, "cloudlet synthesize --early-start URL", x.answer, x.info->running_seconds,
			       x.info->read_seconds, static_cast<unsigned long long>(x.info->demand_pages),
			       static_cast<unsigned long long>(x.info->held_pages));
			early.push_back(x.answer);
			running.push_back(x.info->running_seconds);
			cloudlet_synthesis_info_free(x.info);
		};
		auto run_full = [&] {
			Run x = synthesize(w, ns, url, "cltest-" + std::to_string(getpid()) + "-bef" + std::to_string(r), false);
			printf("%-6d %-52s %10.2f  (download %.2f s)\n", r, "cloudlet synthesize URL", x.answer,
			       x.info->read_seconds);
			full.push_back(x.answer);
			cloudlet_synthesis_info_free(x.info);
		};
		auto run_plain = [&] {
			double t = plain(w, ns, dl);
			printf("%-6d %-52s %10.2f\n", r, "curl + zstd -d --patch-from + virsh restore", t);
			plain_t.push_back(t);
		};
		if (r % 2) {
			run_plain();
			run_full();
			run_early();
		} else {
			run_early();
			run_full();
			run_plain();
		}
	}
	printf("mean: app answers after: early start %.2f s (VM running after %.2f s), full synthesis %.2f s, plain "
	       "route %.2f s; early / full = %.2f, early / plain = %.2f (goal: early / full <= 0.30)\n",
	       mean(early), mean(running), mean(full), mean(plain_t), mean(early) / mean(full),
	       mean(early) / mean(plain_t));
	return 0;
}
