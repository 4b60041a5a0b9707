#include "workload.h"

#include "image_file.h"
#include "save_image.h"
#include "stream_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>


namespace bench {

void die(const std::string &m) {
	fprintf(stderr, "bench: %s\n", m.c_str());
	exit(1);
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void sh(const std::string &cmd) {
	if (system(cmd.c_str()) != 0)
		die("failed: " + cmd);
}

uint64_t size_of(const std::string &p) {
	struct stat st;
	return stat(p.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

std::string capture(const std::string &cmd) {
	FILE *p = popen(cmd.c_str(), "r");
	std::string out;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, p)) > 0)
		out.append(buf, n);
	pclose(p);
	return out;
}

Guest guest_from_args(int &argc, char **argv) {
	Guest g = Guest::Busybox;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--guest") != 0)
			continue;
		if (i + 1 >= argc)
			die("--guest needs busybox or debian");
		std::string v = argv[i + 1];
		if (v == "debian")
			g = Guest::Debian;
		else if (v != "busybox")
			die("--guest needs busybox or debian, not " + v);
		for (int k = i; k + 2 <= argc; k++)
			argv[k] = argv[k + 2];
		argc -= 2;
		break;
	}
	return g;
}

const char *guest_name(Guest g) { return g == Guest::Debian ? "debian" : "busybox"; }

namespace {

std::string run(th_guest *g, const std::string &cmd) {
	char *out = th_guest_check(g, cmd.c_str(), 900000);
	if (!out)
		die(cmd + ": " + th_error());
	std::string s = out;
	free(out);
	return s;
}

} // namespace

Workload::~Workload() {
	th_guest_destroy(launch);
	cloudlet_ctx_free(ctx);
	if (!work.empty())
		sh("rm -rf " + work);
}

namespace {

// The app step of the Debian workload (tests/guest/app-step.sh).
void debian_app_step(th_guest *g) {
	if (th_guest_install_app_step(g) != 0)
		die(th_error());
	run(g, "/usr/local/sbin/app-step setup");
}

} // namespace

void make_workload(Workload &w, const std::string &label, Guest guest) {
	w.guest = guest;
	if (th_setup() != 0)
		die(th_error());
	w.work = "/var/lib/cloudlet-test/" + label + "-" + std::to_string(getpid());
	sh("mkdir -p " + w.work);
	cloudlet_ctx_options co = CLOUDLET_CTX_OPTIONS_INIT;
	w.store = w.work + "/store";
	co.store_dir = w.store.c_str();
	if (cloudlet_ctx_new(&w.ctx, &co) != CLOUDLET_OK)
		die(cloudlet_last_error_message());

	th_guest *g = nullptr;
	th_guest_options go = {};
	go.nic = 1;
	go.debian = guest == Guest::Debian;
	if (th_guest_start(&g, "benchbase", &go) != 0)
		die(th_error());
	if (guest == Guest::Debian)
		run(g, "systemctl is-system-running --wait");
	else
		run(g, "dd if=/dev/urandom of=/dev/vda bs=65536 count=32 2>/dev/null && sync");
	cloudlet_base_options bo = CLOUDLET_BASE_OPTIONS_INIT;
	bo.stop = 1;
	bo.name = "bench";
	cloudlet_base_info *base = nullptr;
	if (cloudlet_base_create(&base, w.ctx, th_guest_domain_name(g), &bo) != CLOUDLET_OK)
		die(cloudlet_last_error_message());
	th_guest_poweroff(g);
	th_guest_destroy(g);
	w.base_dir = base->dir;
	cloudlet_base_info_free(base);

	w.name = "cltest-" + std::to_string(getpid()) + "-benchlaunch";
	cloudlet_resume_options ro = CLOUDLET_RESUME_OPTIONS_INIT;
	ro.name = w.name.c_str();
	cloudlet_instance_info *inst = nullptr;
	if (cloudlet_base_resume(&inst, w.ctx, "bench", &ro) != CLOUDLET_OK)
		die(cloudlet_last_error_message());
	w.inst_dir = inst->dir;
	cloudlet_instance_info_free(inst);
	if (th_guest_attach_domain(&w.launch, w.name.c_str(), nullptr, nullptr) != 0)
		die(th_error());
	if (guest == Guest::Debian) {
		debian_app_step(w.launch);
		return;
	}
	run(w.launch, "dd if=/dev/urandom of=/ram/r bs=1M count=16 2>/dev/null && cp /ram/r /ram/r2 && "
	              "for i in 1 2 3; do cp /bin/busybox /ram/bb$i; done && "
	              "yes 'GET /api/v1/items?id=42 HTTP/1.1 200 OK application/json' | head -c 8000000 > /ram/log && "
	              "dd if=/dev/zero of=/ram/z bs=1M count=8 2>/dev/null");
	run(w.launch, "dd if=/dev/urandom of=/dev/vda bs=65536 count=32 seek=64 2>/dev/null && "
	              "dd if=/dev/vda of=/dev/vda bs=65536 count=16 skip=0 seek=256 2>/dev/null && sync");
}

void write_base_state(const Workload &w, const std::string &path, bool with_disk) {
	cloudlet::qemu::ImageFile img(w.base_dir + "/memory.cltmem");
	int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die("cannot create " + path);
	cloudlet::qemu::FdSink s(fd, path);
	auto head = cloudlet::qemu::encode_save_header("<domain/>", "", true);
	s.write(head.data(), head.size());
	cloudlet::qemu::write_stream(s, img);
	s.flush();
	close(fd);
	if (with_disk)
		for (const auto &d : base_disks(w))
			append_data_extents(w.base_dir + "/disk-" + d + ".raw", path);
}

void append_data_extents(const std::string &path, const std::string &out) {
	int in = open(path.c_str(), O_RDONLY);
	int o = open(out.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
	if (in < 0 || o < 0)
		die("cannot open " + path + " or " + out);
	off_t end = lseek(in, 0, SEEK_END), pos = 0;
	std::vector<char> buf(1 << 20);
	while (pos < end) {
		off_t data = lseek(in, pos, SEEK_DATA);
		if (data < 0)
			break; // only a hole is left
		off_t hole = lseek(in, data, SEEK_HOLE);
		for (off_t at = data; at < hole;) {
			ssize_t n = pread(in, buf.data(), static_cast<size_t>(std::min<off_t>(hole - at, 1 << 20)), at);
			if (n <= 0 || write(o, buf.data(), static_cast<size_t>(n)) != n)
				die("cannot copy " + path + " to " + out);
			at += n;
		}
		pos = hole;
	}
	close(in);
	close(o);
}

double mean(const std::vector<double> &v) {
	double s = 0;
	for (double x : v)
		s += x;
	return v.empty() ? 0 : s / double(v.size());
}

uint64_t make_plain_route_files(const Workload &w) {
	const std::string &work = w.work;
	const std::string virsh = "virsh -q -c qemu:///system ";
	write_base_state(w, work + "/base.sav", false);
	sh(virsh + "save " + w.name + " " + work + "/launch.sav >/dev/null");
	sh("zstd -q -f -T2 -3 --long=31 --patch-from=" + work + "/base.sav " + work + "/launch.sav -o " + work + "/sav.zst");
	uint64_t layers_zst = 0;
	std::string xml = capture(virsh + "save-image-dumpxml " + work + "/launch.sav");
	for (const auto &d : base_disks(w)) {
		std::string layer = w.inst_dir + "/disk-" + d + ".qcow2", plain = work + "/plain-" + d + ".qcow2";
		sh("zstd -q -f -T2 -3 " + layer + " -o " + work + "/layer-" + d + ".zst");
		layers_zst += size_of(work + "/layer-" + d + ".zst");
		for (size_t at = xml.find(layer); at != std::string::npos; at = xml.find(layer, at + plain.size()))
			xml.replace(at, layer.size(), plain);
	}
	FILE *f = fopen((work + "/plain.xml").c_str(), "w");
	fputs(xml.c_str(), f);
	fclose(f);
	f = fopen((work + "/nic.xml").c_str(), "w");
	fputs("<interface type='user'><model type='virtio'/></interface>\n", f);
	fclose(f);
	return layers_zst;
}

void unpack_plain_route(const Workload &w, const std::string &from) {
	sh("zstd -q -d -f --long=31 --patch-from=" + w.work + "/base.sav " + from + "/sav.zst -o " + w.work +
	   "/plain.sav");
	for (const auto &d : base_disks(w))
		sh("zstd -q -d -f " + from + "/layer-" + d + ".zst -o " + w.work + "/plain-" + d + ".qcow2");
}

std::vector<std::string> base_disks(const Workload &w) {
	std::vector<std::string> v;
	for (const char *t : {"vda", "vdb", "vdc"})
		if (size_of(w.base_dir + "/disk-" + t + ".raw"))
			v.push_back(t);
	return v;
}

} // namespace bench
