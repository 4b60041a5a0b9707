// Overlay size and creation time against general-purpose tools, on the
// project's own workload, all measured in this one run:
//
//   bench_overlay
//
// On the workload of bench/workload.h, from the running instance:
//   ours      cloudlet overlay create (zstd, and lzma)
//   baseline  virsh save + qemu-img convert of the disk, then
//             zstd -3 / -19 --long --patch-from=(base save image + base disk),
//             and xz -6 of the launch state
// Prints sizes, times and ratios; asserts nothing. Needs root and libvirt.
#include "workload.h"

#include <cloudlet.h>

#include <cstdio>
#include <string>

using namespace bench;

int main() {
	Workload w;
	make_workload(w, "bench-overlay");
	cloudlet_ctx *ctx = w.ctx;
	const std::string &work = w.work, &name = w.name, &inst_dir = w.inst_dir;

	// Ours, from the running instance.
	std::string ovl = work + "/launch.ovl", ovl_xz = work + "/launch-xz.ovl";
	cloudlet_overlay_info *o = nullptr;
	double t0 = now();
	if (cloudlet_overlay_create(&o, ctx, name.c_str(), ovl.c_str(), nullptr) != CLOUDLET_OK)
		die(cloudlet_last_error_message());
	double t_ours = now() - t0;
	uint64_t launch_bytes = (o->memory_chunks + o->disk_chunks) * 4096;
	double dedup_gbs = static_cast<double>(o->memory_chunks * 4096) / 1e9 / o->capture_seconds;
	cloudlet_overlay_info_free(o);
	cloudlet_overlay_options oo = CLOUDLET_OVERLAY_OPTIONS_INIT;
	oo.codec = "lzma";
	t0 = now();
	if (cloudlet_overlay_create(&o, ctx, name.c_str(), ovl_xz.c_str(), &oo) != CLOUDLET_OK)
		die(cloudlet_last_error_message());
	double t_ours_xz = now() - t0;
	cloudlet_overlay_info_free(o);

	// The base's side of the baseline, prepared ahead like a base is: its
	// save image (written from the base memory) followed by its disk.
	std::string base_state = work + "/base.state";
	write_base_state(w, base_state);

	// The baseline, from the running instance: virsh save (the VM stops),
	// flatten the disk, one launch-state file, then zstd --patch-from.
	std::string launch_state = work + "/launch.state";
	// virsh save stops the instance; the harness handle is dropped at the end.
	t0 = now();
	sh("virsh -q -c qemu:///system save " + name + " " + work + "/launch.sav >/dev/null");
	double t_save = now() - t0;
	sh("virsh -q -c qemu:///system domstate " + name + " >/dev/null 2>&1 || true");
	double t1 = now();
	sh("qemu-img convert -U -O raw " + inst_dir + "/disk-vda.qcow2 " + work + "/launch.disk && cat " + work +
	   "/launch.sav " + work + "/launch.disk > " + launch_state);
	double t_flat = now() - t1;
	auto zstd = [&](int level, const std::string &out) {
		double s = now();
		sh("zstd -q -f -" + std::to_string(level) + " --long=28 --patch-from=" + base_state + " " + launch_state +
		   " -o " + out);
		return now() - s;
	};
	double t_z3 = zstd(3, work + "/p3.zst");
	double t_z19 = zstd(19, work + "/p19.zst");
	t1 = now();
	sh("xz -q -k -f -6 -T2 -c " + launch_state + " > " + work + "/launch.xz");
	double t_xz = now() - t1;

	uint64_t s_ours = size_of(ovl), s_ours_xz = size_of(ovl_xz), s_z3 = size_of(work + "/p3.zst"),
	         s_z19 = size_of(work + "/p19.zst"), s_xz = size_of(work + "/launch.xz");
	printf("launch VM: %.1f MB of memory and disk (state file for the baselines: %.1f MB)\n",
	       static_cast<double>(launch_bytes) / 1e6, static_cast<double>(size_of(launch_state)) / 1e6);
	printf("%-52s %10s %9s %12s\n", "method (running VM -> file)", "size MB", "time s", "size vs ours");
	auto row = [&](const std::string &m, uint64_t s, double t) {
		printf("%-52s %10.2f %9.2f %12.2f\n", m.c_str(), static_cast<double>(s) / 1e6, t,
		       static_cast<double>(s) / static_cast<double>(s_ours));
	};
	row("cloudlet overlay create (zstd)", s_ours, t_ours);
	row("cloudlet overlay create (lzma)", s_ours_xz, t_ours_xz);
	row("virsh save + flatten disk + zstd -3 --patch-from", s_z3, t_save + t_flat + t_z3);
	row("virsh save + flatten disk + zstd -19 --patch-from", s_z19, t_save + t_flat + t_z19);
	row("virsh save + flatten disk + xz -6 -T2", s_xz, t_save + t_flat + t_xz);
	printf("(virsh save %.2f s, flatten + concatenate %.2f s)\n", t_save, t_flat);
	printf("dedup stage (capture + classify + write) over memory: %.2f GB/s\n", dedup_gbs);
	printf("creation time, ours vs virsh save + zstd -3 --patch-from: %.2fx faster\n",
	       (t_save + t_flat + t_z3) / t_ours);

	return 0;
}
