// Synthesis time against the plain route, on the project's own workload
// (bench/workload.h), all measured in this one run:
//
//   bench_synthesis [ROUNDS]
//
//   ours      cloudlet synthesize of the launch VM's overlay (a file), until
//             the VM runs with a fresh NIC
//   baseline  the same VM from zstd patches made ahead against the base:
//             zstd -d --long --patch-from of the launch save image (against
//             the base's save image) and of the launch disk (against the base
//             disk), virsh restore of the save image (XML pointing at that
//             disk), and the same NIC swap with virsh detach-interface (waiting
//             until the guest let go) + attach-device
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

Plain plain_route(const Workload &w, const std::string &dom) {
	Plain p;
	double t = now();
	sh("zstd -q -d -f --long=28 --patch-from=" + w.work + "/base.sav " + w.work + "/sav.zst -o " + w.work +
	   "/plain.sav");
	sh("zstd -q -d -f --long=28 --patch-from=" + w.base_dir + "/disk-vda.raw " + w.work + "/disk.zst -o " + w.work +
	   "/plain.disk");
	p.unpatch = now() - t;
	t = now();
	sh(std::string(kVirsh) + "restore " + w.work + "/plain.sav --xml " + w.work + "/plain.xml --running >/dev/null");
	p.restore = now() - t;
	t = now();
	std::string mac = capture(std::string(kVirsh) + "domiflist " + dom + " | awk 'NF>=5 {print $5; exit}'");
	while (!mac.empty() && mac.back() == '\n')
		mac.pop_back();
	sh(std::string(kVirsh) + "detach-interface " + dom + " user --mac " + mac + " --live >/dev/null");
	while (capture(std::string(kVirsh) + "domiflist " + dom).find(mac) != std::string::npos) {
	}
	sh(std::string(kVirsh) + "attach-device " + dom + " " + w.work + "/nic.xml --live >/dev/null");
	p.nic = now() - t;
	return p;
}

} // namespace

int main(int argc, char **argv) {
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	Workload w;
	make_workload(w, "bench-synthesis");
	const std::string &work = w.work;

	// The overlay, from the running launch VM.
	std::string ovl = work + "/launch.ovl";
	if (cloudlet_overlay_create(nullptr, w.ctx, w.name.c_str(), ovl.c_str(), nullptr) != CLOUDLET_OK)
		die(cloudlet_last_error_message());

	// The plain route's inputs, made ahead: the launch VM's save image and
	// disk as zstd patches against the base's, and the restore XML with the
	// disk pointing at the unpatched copy.
	write_base_state(w, work + "/base.sav", false);
	sh(std::string(kVirsh) + "save " + w.name + " " + work + "/launch.sav >/dev/null");
	sh("qemu-img convert -O raw " + w.inst_dir + "/disk-vda.qcow2 " + work + "/launch.disk");
	sh("zstd -q -f -3 --long=28 --patch-from=" + work + "/base.sav " + work + "/launch.sav -o " + work + "/sav.zst");
	sh("zstd -q -f -3 --long=28 --patch-from=" + w.base_dir + "/disk-vda.raw " + work + "/launch.disk -o " + work +
	   "/disk.zst");
	std::string xml = capture(std::string(kVirsh) + "save-image-dumpxml " + work + "/launch.sav");
	{
		// The disk: the unpatched raw copy instead of the instance's qcow2.
		size_t a = xml.find("<disk type='file' device='disk'>"), b = xml.find("</disk>", a);
		if (a == std::string::npos || b == std::string::npos)
			die("no disk in the saved XML");
		std::string disk = "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='" + work +
		                   "/plain.disk'/><target dev='vda' bus='virtio'/></disk>";
		xml = xml.substr(0, a) + disk + xml.substr(b + 7);
		FILE *f = fopen((work + "/plain.xml").c_str(), "w");
		fputs(xml.c_str(), f);
		fclose(f);
		f = fopen((work + "/nic.xml").c_str(), "w");
		fputs("<interface type='user'><model type='virtio'/></interface>\n", f);
		fclose(f);
	}
	printf("overlay %.1f MB; plain route's patches: save image %.1f MB + disk %.1f MB (launch save image %.1f MB)\n",
	       double(size_of(ovl)) / 1e6, double(size_of(work + "/sav.zst")) / 1e6,
	       double(size_of(work + "/disk.zst")) / 1e6, double(size_of(work + "/launch.sav")) / 1e6);

	std::vector<double> ours, plain;
	printf("%-6s %-44s %8s %8s %8s %8s\n", "round", "route", "data s", "restore", "NIC s", "total s");
	for (int r = 0; r < rounds; r++) {
		auto run_ours = [&] {
			std::string name = "cltest-" + std::to_string(getpid()) + "-bsyn" + std::to_string(r);
			cloudlet_synthesis_options o = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
			o.name = name.c_str();
			cloudlet_synthesis_info *i = nullptr;
			double t = now();
			if (cloudlet_synthesize(&i, w.ctx, ovl.c_str(), &o) != CLOUDLET_OK)
				die(cloudlet_last_error_message());
			double total = now() - t;
			printf("%-6d %-44s %8.2f %8.2f %8.2f %8.2f\n", r, "cloudlet synthesize", i->read_seconds,
			       i->restore_seconds, i->nic_seconds, total);
			ours.push_back(total);
			cloudlet_synthesis_info_free(i);
			sh(std::string(kVirsh) + "destroy " + name + " >/dev/null");
		};
		auto run_plain = [&] {
			Plain p = plain_route(w, w.name);
			printf("%-6d %-44s %8.2f %8.2f %8.2f %8.2f\n", r, "zstd -d --patch-from + virsh restore + NIC swap",
			       p.unpatch, p.restore, p.nic, p.total());
			plain.push_back(p.total());
			sh(std::string(kVirsh) + "destroy " + w.name + " >/dev/null");
		};
		if (r % 2) {
			run_plain();
			run_ours();
		} else {
			run_ours();
			run_plain();
		}
	}
	auto mean = [](const std::vector<double> &v) {
		double s = 0;
		for (double x : v)
			s += x;
		return s / double(v.size());
	};
	printf("mean: synthesize %.2f s, plain route %.2f s; synthesize / plain = %.2f\n", mean(ours), mean(plain),
	       mean(ours) / mean(plain));
	return 0;
}
