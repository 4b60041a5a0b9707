// Handoff over an emulated WAN against QEMU's own live migration, on the
// project's workload (bench/workload.h), all measured in this one run:
//
//   bench_handoff [--guest busybox|debian] [--hot-file] [--no-baseline] [--no-plaintext] [--verbose]
//                 [RATE_MBIT...]   (default: 25 10; 0 is the namespace's loopback unshaped)
//
// Each handoff runs over TLS 1.3 (PSK from the token, the default), and then
// the VM goes back over the same link with --insecure-plaintext, so that the
// two rows side by side say what encryption costs (--no-plaintext skips it).
// --hot-file: during both migrations the guest keeps rewriting a 4 MiB file
// (new random content each time, written by rename, so each round gets
// fresh pages and frees the old ones), the workload issue 15 names; the
// floor is then the overlay plus the hot file once. --no-baseline skips
// QEMU's migration (minutes on a slow link) while tuning; figures to quote
// come from a run with it. --verbose: both cloudlets' debug logs on stderr.
// Two cloudlets on this machine (one libvirtd, stores A and B holding the
// same base); the link is the loopback of a network namespace shaped with
// tbf (docs/platform.md: this kernel has no netem). Per rate:
//   floor     the VM's overlay (everything it has that the base lacks) at the link rate
//   baseline  QEMU's own live migration (auto-converge on) into the link, through a
//             relay (bench/wan_relay.py) to a sink; the VM then runs on. On the small
//             guest with block migration (memory + the whole disk, no base knowledge);
//             on the Debian guest memory only (its 4 GiB disk would take most of an
//             hour at 25 Mbit/s; as if the disk were on shared storage, which favours QEMU)
//   ours      cloudlet handoff send → receive across the link; the VM moves (A→B, then
//             back B→A at the next rate)
// Prints total time, downtime and bytes; asserts nothing. Needs root and libvirt.
#include "workload.h"

#include <cloudlet.h>

#include <json-c/json.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

using namespace bench;

namespace {

double jnum(json_object *o, const char *k) {
	json_object *v = nullptr;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_double(v) : 0;
}

std::string qmp(const std::string &dom, const std::string &cmd) {
	return capture("virsh -q -c qemu:///system qemu-monitor-command " + dom + " '" + cmd + "'");
}

struct Result {
	double total = 0, downtime = 0, drain = 0, restore = 0;
	uint64_t bytes = 0;
};

// QEMU's own migration of `dom` (memory + block migration of its disk) into the link.
Result native_migration(const std::string &ns, const std::string &work, const std::string &dom, const char *relay,
                        bool block) {
	std::string sock = work + "/mig.sock";
	FILE *sinkp = popen(("ip netns exec " + ns + " " + relay + " sink 7001").c_str(), "r");
	char line[256];
	if (!fgets(line, sizeof line, sinkp))
		die("sink relay did not start");
	FILE *fwd = popen(("ip netns exec " + ns + " " + relay + " unix2tcp " + sock + " 7001").c_str(), "r");
	if (!fgets(line, sizeof line, fwd))
		die("unix relay did not start");
	qmp(dom, std::string(R"({"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"block","state":)") +
	             (block ? "true" : "false") + R"(},{"capability":"auto-converge","state":true}]}})");
	Result r;
	double t0 = now();
	std::string out = qmp(dom, R"({"execute":"migrate","arguments":{"uri":"unix:)" + sock + R"("}})");
	if (out.find("error") != std::string::npos)
		die("QEMU refused the migration: " + out);
	for (;;) {
		std::string st = qmp(dom, R"({"execute":"query-migrate"})");
		if (st.find("\"completed\"") != std::string::npos) {
			r.total = now() - t0;
			json_object *j = json_tokener_parse(st.c_str()), *ret = nullptr;
			if (j && json_object_object_get_ex(j, "return", &ret))
				r.downtime = jnum(ret, "downtime") / 1000;
			if (j)
				json_object_put(j);
			break;
		}
		if (st.find("\"failed\"") != std::string::npos || st.find("\"cancelled\"") != std::string::npos)
			die("QEMU's migration failed: " + st);
		usleep(100000);
	}
	pclose(fwd);
	if (fgets(line, sizeof line, sinkp))
		r.bytes = strtoull(line, nullptr, 10);
	pclose(sinkp);
	qmp(dom, R"({"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"block","state":false},{"capability":"auto-converge","state":false}]}})");
	qmp(dom, R"({"execute":"cont"})");
	return r;
}

std::string send_flags; // global options for both cloudlet commands

// `security`: "" (TLS 1.3 with the token's PSK, the default) or
// " --insecure-plaintext".
Result our_handoff(const std::string &ns, const std::string &cli, const std::string &from_store,
                   const std::string &to_store, const std::string &dom, const std::string &new_name,
                   const std::string &token, const std::string &security = "") {
	std::string recv_cmd = "ip netns exec " + ns + " " + cli + " --quiet --store " + to_store + send_flags +
	                       " --json handoff receive --listen 127.0.0.1:7002 --token-file " + token + security +
	                       " --once --name " + new_name;
	std::string recv_out;
	std::thread rt([&] { recv_out = capture(recv_cmd); });
	usleep(500000);
	std::string out = capture("ip netns exec " + ns + " " + cli + " --store " + from_store + send_flags + " --quiet --json handoff send " +
	                          dom + " 127.0.0.1:7002 --token-file " + token + security);
	rt.join();
	json_object *j = json_tokener_parse(out.c_str());
	if (!j)
		die("handoff failed: " + out + " / " + recv_out);
	Result r;
	r.total = jnum(j, "total_seconds");
	r.downtime = jnum(j, "downtime_seconds");
	r.bytes = static_cast<uint64_t>(jnum(j, "bytes_sent"));
	r.drain = jnum(j, "drain_seconds");
	r.restore = jnum(j, "restore_seconds");
	json_object_put(j);
	return r;
}

} // namespace

int main(int argc, char **argv) {
	Guest guest = guest_from_args(argc, argv);
	bool hot = false, baseline = true, plaintext = true;
	std::vector<int> rates;
	for (int i = 1; i < argc; i++)
		if (std::string(argv[i]) == "--hot-file")
			hot = true;
		else if (std::string(argv[i]) == "--no-baseline")
			baseline = false;
		else if (std::string(argv[i]) == "--no-plaintext")
			plaintext = false;
		else if (std::string(argv[i]) == "--verbose")
			send_flags = " --verbose";
		else
			rates.push_back(atoi(argv[i]));
	if (rates.empty())
		rates = {25, 10};
	char self[4096] = {};
	if (readlink("/proc/self/exe", self, sizeof self - 1) <= 0)
		die("cannot find this program's path");
	std::string exe = self;
	std::string build = exe.substr(0, exe.rfind("/bench/"));
	std::string cli = build + "/tools/cloudlet/cloudlet";
	// The relay script sits in the source tree; build trees live inside it
	// (build/, build-san/) unless CLOUDLET_SOURCE_DIR says otherwise.
	const char *env = getenv("CLOUDLET_SOURCE_DIR");
	std::string src_root = env ? env : build.substr(0, build.rfind('/'));
	std::string relay_py = "/usr/bin/python3 " + src_root + "/bench/wan_relay.py";

	Workload w;
	make_workload(w, "bench-handoff", guest);
	const char *hot_dir = guest == Guest::Debian ? "/run" : "/ram"; // tmpfs in both guests
	// Through the workload's own handle: the guest's shell channel takes one
	// client at a time.
	auto start_hot = [&] {
		std::string cmd = std::string("(while :; do head -c 4194304 /dev/urandom > ") + hot_dir + "/hot.new; mv " +
		                  hot_dir + "/hot.new " + hot_dir + "/hot; done) >/dev/null 2>&1 &";
		char *out = th_guest_check(w.launch, cmd.c_str(), 60000);
		if (!out)
			die(th_error());
		free(out);
	};
	if (hot)
		start_hot();
	std::string store_b = w.work + "/store-b", token = w.work + "/token", pkg = w.work + "/base.pkg";
	sh("head -c 48 /dev/urandom | base64 > " + token + " && chmod 600 " + token);
	sh(cli + " --store " + w.store + " --quiet base export bench " + pkg);
	printf("guest %s%s\n", guest_name(guest), hot ? ", rewriting a 4 MiB file in tmpfs throughout" : "");
	sh(cli + " --store " + store_b + " --quiet base import " + pkg);
	std::string ns = "cltwan" + std::to_string(getpid());
	std::string dom = w.name, store_from = w.store, store_to = store_b;

	printf("%-8s %-46s %9s %10s %10s %8s\n", "link", "method", "MB sent", "total s", "downtime s", "vs QEMU");
	for (size_t i = 0; i < rates.size(); i++) {
		int rate = rates[i];
		// Rate 0: the namespace's loopback unshaped (what TLS costs in CPU
		// shows there; on a slow link the link decides).
		sh("ip netns add " + ns + " && ip netns exec " + ns + " ip link set lo mtu 1500 up" +
		   (rate > 0 ? " && ip netns exec " + ns + " tc qdisc add dev lo root tbf rate " + std::to_string(rate) +
		                   "mbit burst 32kb latency 400ms"
		             : std::string()));
		// The floor: what the VM has that the base lacks, at the link rate.
		std::string ovl = w.work + "/floor.ovl";
		sh(cli + " --store " + store_from + " --quiet overlay create " + dom + " " + ovl);
		double floor_bytes = double(size_of(ovl)) + (hot ? 4194304.0 : 0);
		double floor_s = rate > 0 ? floor_bytes * 8 / (rate * 1e6) : 0;
		Result native;
		if (baseline)
			native = native_migration(ns, w.work, dom, relay_py.c_str(), guest == Guest::Busybox);
		std::string next = "cltest-" + std::to_string(getpid()) + "-hop" + std::to_string(i);
		Result ours = our_handoff(ns, cli, store_from, store_to, dom, next, token);
		// The same VM back over the same link without TLS: what encryption
		// costs, from the same run.
		Result plain;
		if (plaintext) {
			std::string back = next + "b";
			plain = our_handoff(ns, cli, store_to, store_from, next, back, token, " --insecure-plaintext");
			next = back;
			std::swap(store_from, store_to);
		}
		sh("ip netns del " + ns);
		std::string l = rate > 0 ? std::to_string(rate) + " Mbit" : "loopback";
		printf("%-8s %-46s %9.1f %10.2f %10s %8s\n", l.c_str(),
		       hot ? "floor: (overlay + hot file) / link rate" : "floor: overlay bytes / link rate", floor_bytes / 1e6,
		       floor_s, "-", "");
		if (baseline)
			printf("%-8s %-46s %9.1f %10.2f %10.2f %8s\n", l.c_str(),
			       guest == Guest::Busybox ? "QEMU live migration + block migration" : "QEMU live migration (memory only)",
			       double(native.bytes) / 1e6, native.total, native.downtime, "1.00");
		char vs[32] = "-";
		if (baseline)
			snprintf(vs, sizeof vs, "%.2f", ours.total / native.total);
		printf("%-8s %-46s %9.1f %10.2f %10.2f %8s\n", l.c_str(), "cloudlet handoff (TLS 1.3, PSK from the token)",
		       double(ours.bytes) / 1e6, ours.total, ours.downtime, vs);
		if (plaintext) {
			char pvs[32] = "-";
			if (baseline)
				snprintf(pvs, sizeof pvs, "%.2f", plain.total / native.total);
			printf("%-8s %-46s %9.1f %10.2f %10.2f %8s\n", l.c_str(), "cloudlet handoff (--insecure-plaintext)",
			       double(plain.bytes) / 1e6, plain.total, plain.downtime, pvs);
			printf("%-8s (TLS vs plaintext: time %.2fx, bytes %.3fx, downtime %.2fx; the plaintext run moves the VM "
			       "back, so its state differs a little)\n",
			       "", ours.total / plain.total, double(ours.bytes) / double(plain.bytes), ours.downtime / plain.downtime);
		}
		if (rate > 0)
			printf("%-8s (cloudlet handoff vs floor: bytes %.2fx, time %.2fx)\n", "", double(ours.bytes) / floor_bytes,
			       ours.total / floor_s);
		printf("%-8s (downtime: last items + device state %.2f s, restore at the destination %.2f s, rest %.2f s)\n", "",
		       ours.drain, ours.restore, ours.downtime - ours.drain - ours.restore);
		fflush(stdout);
		dom = next;
		std::swap(store_from, store_to);
	}
	sh("virsh -q -c qemu:///system destroy " + dom + " >/dev/null 2>&1 || true");
	return 0;
}
