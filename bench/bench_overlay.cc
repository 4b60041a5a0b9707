// Overlay size and creation time against general-purpose tools, on the
// project's own workload, all measured in this one run:
//
//   bench_overlay
//
// The test guest (256 MiB, 64 MiB disk) becomes a base; an instance of it
// is customised: 16 MiB of random data and a copy of it, copies of busybox
// (in the base's page cache already), 8 MiB of compressible text, 8 MiB of
// zeros, 2 MiB of new data on the disk and 1 MiB copied from the base's disk
// data. Then, from the running instance:
//   ours      cloudlet overlay create (zstd, and lzma)
//   baseline  virsh save + qemu-img convert of the disk, then
//             zstd -3 / -19 --long --patch-from=(base save image + base disk),
//             and xz -6 of the launch state
// Prints sizes, times and ratios; asserts nothing. Needs root and libvirt.
#include "harness.h"

#include "image_file.h"
#include "save_image.h"
#include "stream_writer.h"

#include <cloudlet.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void die(const std::string &m) {
	fprintf(stderr, "bench_overlay: %s\n", m.c_str());
	exit(1);
}

std::string run(th_guest *g, const std::string &cmd) {
	char *out = th_guest_check(g, cmd.c_str(), 300000);
	if (!out)
		die(cmd + ": " + th_error());
	std::string s = out;
	free(out);
	return s;
}

void sh(const std::string &cmd) {
	if (system(cmd.c_str()) != 0)
		die("failed: " + cmd);
}

uint64_t size_of(const std::string &p) {
	struct stat st;
	return stat(p.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

} // namespace

int main() {
	if (th_setup() != 0)
		die(th_error());
	std::string work = "/var/lib/cloudlet-test/bench-overlay-" + std::to_string(getpid());
	sh("mkdir -p " + work);
	cloudlet_ctx_options co = CLOUDLET_CTX_OPTIONS_INIT;
	std::string store = work + "/store";
	co.store_dir = store.c_str();
	cloudlet_ctx *ctx = nullptr;
	cloudlet_ctx_new(&ctx, &co);

	th_guest *g = nullptr;
	if (th_guest_start(&g, "benchbase", nullptr) != 0)
		die(th_error());
	run(g, "dd if=/dev/urandom of=/dev/vda bs=65536 count=32 2>/dev/null && sync");
	cloudlet_base_options bo = CLOUDLET_BASE_OPTIONS_INIT;
	bo.stop = 1;
	bo.name = "bench";
	cloudlet_base_info *base = nullptr;
	if (cloudlet_base_create(&base, ctx, th_guest_domain_name(g), &bo) != CLOUDLET_OK)
		die(cloudlet_last_error_message());
	th_guest_poweroff(g);
	std::string base_dir = base->dir;

	std::string name = "cltest-" + std::to_string(getpid()) + "-benchlaunch";
	cloudlet_resume_options ro = CLOUDLET_RESUME_OPTIONS_INIT;
	ro.name = name.c_str();
	cloudlet_instance_info *inst = nullptr;
	if (cloudlet_base_resume(&inst, ctx, "bench", &ro) != CLOUDLET_OK)
		die(cloudlet_last_error_message());
	std::string inst_dir = inst->dir;
	cloudlet_instance_info_free(inst);
	th_guest *l = nullptr;
	if (th_guest_attach_domain(&l, name.c_str(), nullptr, nullptr) != 0)
		die(th_error());
	run(l, "dd if=/dev/urandom of=/ram/r bs=1M count=16 2>/dev/null && cp /ram/r /ram/r2 && "
	       "for i in 1 2 3; do cp /bin/busybox /ram/bb$i; done && "
	       "yes 'GET /api/v1/items?id=42 HTTP/1.1 200 OK application/json' | head -c 8000000 > /ram/log && "
	       "dd if=/dev/zero of=/ram/z bs=1M count=8 2>/dev/null");
	run(l, "dd if=/dev/urandom of=/dev/vda bs=65536 count=32 seek=64 2>/dev/null && "
	       "dd if=/dev/vda of=/dev/vda bs=65536 count=16 skip=0 seek=256 2>/dev/null && sync");

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
	{
		cloudlet::qemu::ImageFile img(base_dir + "/memory.cltmem");
		int fd = open(base_state.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
		cloudlet::qemu::FdSink s(fd, base_state);
		auto head = cloudlet::qemu::encode_save_header("<domain/>", "", true);
		s.write(head.data(), head.size());
		cloudlet::qemu::write_stream(s, img);
		s.flush();
		close(fd);
	}
	sh("cat '" + base_dir + "/disk-vda.raw' >> " + base_state);

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

	th_guest_destroy(l);
	cloudlet_base_info_free(base);
	cloudlet_ctx_free(ctx);
	sh("rm -rf " + work);
	return 0;
}
