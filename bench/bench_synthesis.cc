// Synthesis time against the plain route, on the project's own workload
// (bench/workload.h), all measured in this one run:
//
//   bench_synthesis [--guest busybox|debian] [ROUNDS]
//
//   ours      cloudlet synthesize of the launch VM's overlay (a file), until
//             the guest sees its fresh NIC (its MAC in /sys/class/net)
//   baseline  the same VM from what a user would ship instead, made ahead:
//             the launch save image as a zstd patch against the base's save
//             image and each disk's copy-on-write layer (qcow2 over the base's
//             raw disk) compressed with zstd; zstd -d of both, virsh restore of
//             the save image (XML pointing at the unpacked layers), and the
//             same NIC swap with virsh detach-interface (waiting until the
//             guest let go) + attach-device, until the guest sees the new NIC
//   early     cloudlet synthesize --early-start of the same file (memory by
//             postcopy, docs/early-start.md): when the VM ran, and when its
//             guest saw the fresh NIC
//   also      virsh restore alone (the stale NIC stays), for the ratio the
//             issue asks for against a plain restore
// Each round runs both routes, alternating which goes first; the page cache
// is warm for both (files just written). Prints times and the ratio;
// asserts nothing. Needs root and libvirt.
#include "workload.h"

#include <cloudlet.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <unistd.h>

using namespace bench;

namespace {

const char *kVirsh = "virsh -q -c qemu:///system ";

struct Plain {
	double unpatch = 0, restore = 0, nic = 0;
	double total() const { return unpatch + restore + nic; }
};

// Waits until the guest of `dom` lists `mac` (lower case) among its NICs.
void wait_for_mac(const std::string &dom, const std::string &mac) {
	th_guest *g = nullptr;
	if (th_guest_attach_domain(&g, dom.c_str(), nullptr, nullptr) != 0)
		die(th_error());
	// (No "exit": the command runs in the guest's shell itself.)
	std::string cmd = "for i in $(seq 3000); do grep -qx " + mac + " /sys/class/net/*/address 2>/dev/null && break; "
	                  "sleep 0.01; done; grep -qx " + mac + " /sys/class/net/*/address";
	char *out = th_guest_check(g, cmd.c_str(), 60000);
	if (!out)
		die("the guest of " + dom + " never saw NIC " + mac + ": " + th_error());
	free(out);
	// Detach the handle without destroying the domain the caller owns.
	th_guest_forget(g);
}

std::string first_mac(const std::string &dom) {
	std::string mac = capture(std::string(kVirsh) + "domiflist " + dom + " | awk 'NF>=5 {print $5; exit}'");
	while (!mac.empty() && mac.back() == '\n')
		mac.pop_back();
	return mac;
}

Plain plain_route(const Workload &w, const std::string &dom) {
	Plain p;
	double t = now();
	unpack_plain_route(w, w.work);
	p.unpatch = now() - t;
	t = now();
	sh(std::string(kVirsh) + "restore " + w.work + "/plain.sav --xml " + w.work + "/plain.xml --running >/dev/null");
	p.restore = now() - t;
	t = now();
	std::string mac = first_mac(dom);
	sh(std::string(kVirsh) + "detach-interface " + dom + " user --mac " + mac + " --live >/dev/null");
	while (capture(std::string(kVirsh) + "domiflist " + dom).find(mac) != std::string::npos) {
	}
	sh(std::string(kVirsh) + "attach-device " + dom + " " + w.work + "/nic.xml --live >/dev/null");
	wait_for_mac(dom, first_mac(dom));
	p.nic = now() - t;
	return p;
}

} // namespace

int main(int argc, char **argv) {
	Guest guest = guest_from_args(argc, argv);
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	Workload w;
	make_workload(w, "bench-synthesis", guest);
	const std::string &work = w.work;

	// The overlay, from the running launch VM.
	std::string ovl = work + "/launch.ovl";
	if (cloudlet_overlay_create(nullptr, w.ctx, w.name.c_str(), ovl.c_str(), nullptr) != CLOUDLET_OK)
		die(cloudlet_last_error_message());

	// The plain route's inputs, made ahead: the launch VM's save image as a
	// zstd patch against the base's, each disk's copy-on-write layer
	// compressed, and the restore XML with the disks pointing at the
	// unpacked layers (over the base's raw disks, as the instance's were).
	uint64_t layers_zst = make_plain_route_files(w);
	printf("guest %s; overlay %.1f MB; plain route's files: save image patch %.1f MB + disk layers %.1f MB "
	       "(launch save image %.1f MB)\n",
	       guest_name(guest), double(size_of(ovl)) / 1e6, double(size_of(work + "/sav.zst")) / 1e6,
	       double(layers_zst) / 1e6, double(size_of(work + "/launch.sav")) / 1e6);

	std::vector<double> ours, plain, restore_only, early, early_running;
	printf("%-6s %-44s %8s %8s %8s %8s\n", "round", "route", "data s", "restore", "NIC s", "total s");
	for (int r = 0; r < rounds; r++) {
		// cloudlet synthesize, plain or with early start, until the guest sees its fresh NIC.
		auto run_synthesize = [&](bool early_start) {
			std::string name = "cltest-" + std::to_string(getpid()) + (early_start ? "-besyn" : "-bsyn") +
			                   std::to_string(r);
			cloudlet_synthesis_options o = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
			o.name = name.c_str();
			if (early_start)
				o.flags = CLOUDLET_SYNTHESIS_EARLY_START;
			cloudlet_synthesis_info *i = nullptr;
			double t = now();
			if (cloudlet_synthesize(&i, w.ctx, ovl.c_str(), &o) != CLOUDLET_OK)
				die(cloudlet_last_error_message());
			wait_for_mac(name, i->macs[0]);
			double total = now() - t;
			printf("%-6d %-44s %8.2f %8.2f %8.2f %8.2f", r,
			       early_start ? "cloudlet synthesize --early-start" : "cloudlet synthesize", i->read_seconds,
			       i->restore_seconds, i->nic_seconds, total);
			if (early_start) {
				printf("  (running after %.2f s; %llu pages on demand, %llu behind)", i->running_seconds,
				       static_cast<unsigned long long>(i->demand_pages),
				       static_cast<unsigned long long>(i->background_pages));
				early.push_back(total);
				early_running.push_back(i->running_seconds);
			} else {
				ours.push_back(total);
			}
			printf("\n");
			cloudlet_synthesis_info_free(i);
			sh(std::string(kVirsh) + "destroy " + name + " >/dev/null");
		};
		auto run_ours = [&] { run_synthesize(false); };
		auto run_early = [&] { run_synthesize(true); };
		auto run_plain = [&] {
			Plain p = plain_route(w, w.name);
			printf("%-6d %-44s %8.2f %8.2f %8.2f %8.2f\n", r, "zstd -d --patch-from + virsh restore + NIC swap",
			       p.unpatch, p.restore, p.nic, p.total());
			plain.push_back(p.total());
			restore_only.push_back(p.restore);
			sh(std::string(kVirsh) + "destroy " + w.name + " >/dev/null");
		};
		if (r % 2) {
			run_plain();
			run_early();
			run_ours();
		} else {
			run_ours();
			run_early();
			run_plain();
		}
	}
	printf("mean: synthesize %.2f s, plain route %.2f s; synthesize / plain = %.2f\n", mean(ours), mean(plain),
	       mean(ours) / mean(plain));
	printf("mean: virsh restore of the launch VM alone (stale NIC) %.2f s; synthesize / plain restore = %.2f\n",
	       mean(restore_only), mean(ours) / mean(restore_only));
	printf("mean: early start running after %.2f s, guest on its new NIC after %.2f s; early / synthesize = %.2f "
	       "(running) and %.2f (NIC), early / plain route = %.2f (NIC)\n",
	       mean(early_running), mean(early), mean(early_running) / mean(ours), mean(early) / mean(ours),
	       mean(early) / mean(plain));
	return 0;
}
