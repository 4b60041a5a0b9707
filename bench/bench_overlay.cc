// Overlay size and creation time against general-purpose tools, on the
// project's own workload, all measured in this one run:
//
//   bench_overlay [--guest busybox|debian]
//
// On a workload of bench/workload.h, from the running instance:
//   ours      cloudlet overlay create (zstd, and lzma)
//   baseline  virsh save + qemu-img convert of the disks to raw with their
//             holes left out, then zstd -3 (and, on the small guest, -19)
//             --long=31 --patch-from=(base save image + base disks, holes
//             left out), and (small guest) xz -6 of the launch state
// Prints sizes, times and ratios; asserts nothing. Needs root and libvirt.
#include "workload.h"

#include <cloudlet.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

using namespace bench;

int main(int argc, char **argv) {
	Guest guest = guest_from_args(argc, argv);
	bool small = guest == Guest::Busybox;
	Workload w;
	make_workload(w, "bench-overlay", guest);
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
	uint64_t changed = (o->memory_chunks - o->memory[CLOUDLET_CHUNK_UNCHANGED] + o->disk_chunks -
	                    o->disk[CLOUDLET_CHUNK_UNCHANGED]) * 4096;
	double dedup_gbs = static_cast<double>(o->memory_chunks * 4096) / 1e9 / o->capture_seconds;
	printf("overlay (zstd) chunk counts, memory / disk:\n");
	const char *kinds[] = {"unchanged", "zero", "base memory", "base disk", "self", "data", "delta"};
	for (int k = 0; k < CLOUDLET_CHUNK_KINDS; k++)
		printf("  %-12s %9llu / %9llu\n", kinds[k], (unsigned long long)o->memory[k], (unsigned long long)o->disk[k]);
	printf("  %-12s %9llu / %9llu  (of delta: against a stored chunk at a byte shift)\n", "shifted",
	       (unsigned long long)o->memory_shifted, (unsigned long long)o->disk_shifted);
	cloudlet_overlay_info_free(o);
	cloudlet_overlay_options oo = CLOUDLET_OVERLAY_OPTIONS_INIT;
	oo.codec = "lzma";
	t0 = now();
	if (cloudlet_overlay_create(&o, ctx, name.c_str(), ovl_xz.c_str(), &oo) != CLOUDLET_OK)
		die(cloudlet_last_error_message());
	double t_ours_xz = now() - t0;
	cloudlet_overlay_info_free(o);
	// Our zstd at higher levels: what a level buys on this workload.
	std::vector<std::pair<int, std::pair<uint64_t, double>>> levels;
	for (int level : {9, 19}) {
		cloudlet_overlay_options lo = CLOUDLET_OVERLAY_OPTIONS_INIT;
		lo.level = level;
		std::string f = work + "/launch-" + std::to_string(level) + ".ovl";
		t0 = now();
		if (cloudlet_overlay_create(&o, ctx, name.c_str(), f.c_str(), &lo) != CLOUDLET_OK)
			die(cloudlet_last_error_message());
		levels.push_back({level, {size_of(f), now() - t0}});
		cloudlet_overlay_info_free(o);
	}

	// CLOUDLET_BENCH_KEEP=DIR keeps the overlay for a closer look.
	if (const char *keep = getenv("CLOUDLET_BENCH_KEEP"))
		sh("cp " + ovl + " " + keep + "/launch-" + guest_name(guest) + ".ovl");

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
	sh("cp " + work + "/launch.sav " + launch_state);
	for (const auto &d : base_disks(w)) {
		sh("qemu-img convert -U -O raw " + inst_dir + "/disk-" + d + ".qcow2 " + work + "/launch-" + d + ".raw");
		append_data_extents(work + "/launch-" + d + ".raw", launch_state);
	}
	double t_flat = now() - t1;
	auto zstd = [&](int level, const std::string &out) {
		double s = now();
		sh("zstd -q -f -T2 -" + std::to_string(level) + " --long=31 --patch-from=" + base_state + " " + launch_state +
		   " -o " + out);
		return now() - s;
	};
	double t_z3 = zstd(3, work + "/p3.zst");
	double t_z19 = small ? zstd(19, work + "/p19.zst") : 0;
	t1 = now();
	if (small)
		sh("xz -q -k -f -6 -T2 -c " + launch_state + " > " + work + "/launch.xz");
	double t_xz = now() - t1;

	uint64_t s_ours = size_of(ovl), s_ours_xz = size_of(ovl_xz), s_z3 = size_of(work + "/p3.zst"),
	         s_z19 = size_of(work + "/p19.zst"), s_xz = size_of(work + "/launch.xz");
	printf("guest %s; launch VM: %.1f MB of memory and disk, %.1f MB of it changed from the base "
	       "(state file for the baselines: %.1f MB, base state %.1f MB)\n",
	       guest_name(guest), static_cast<double>(launch_bytes) / 1e6, static_cast<double>(changed) / 1e6,
	       static_cast<double>(size_of(launch_state)) / 1e6, static_cast<double>(size_of(base_state)) / 1e6);
	printf("%-52s %10s %9s %12s\n", "method (running VM -> file)", "size MB", "time s", "size vs ours");
	auto row = [&](const std::string &m, uint64_t s, double t) {
		printf("%-52s %10.2f %9.2f %12.2f\n", m.c_str(), static_cast<double>(s) / 1e6, t,
		       static_cast<double>(s) / static_cast<double>(s_ours));
	};
	row("cloudlet overlay create (zstd)", s_ours, t_ours);
	row("cloudlet overlay create (lzma)", s_ours_xz, t_ours_xz);
	for (const auto &[level, st] : levels)
		row("cloudlet overlay create (zstd --level " + std::to_string(level) + ")", st.first, st.second);
	row("virsh save + flatten disks + zstd -3 --long=31 --patch-from", s_z3, t_save + t_flat + t_z3);
	if (small) {
		row("virsh save + flatten disks + zstd -19 --long=31 --patch-from", s_z19, t_save + t_flat + t_z19);
		row("virsh save + flatten disks + xz -6 -T2", s_xz, t_save + t_flat + t_xz);
	}
	printf("(virsh save %.2f s, flatten + concatenate %.2f s)\n", t_save, t_flat);
	printf("dedup stage (capture + classify + write) over memory: %.2f GB/s\n", dedup_gbs);
	printf("ours vs virsh save + zstd -3 --long=31 --patch-from: size %.2fx, creation time %.2fx\n",
	       static_cast<double>(s_ours) / static_cast<double>(s_z3), t_ours / (t_save + t_flat + t_z3));

	return 0;
}
