// Peak memory and time of `cloudlet base create` and `base show --verify`
// on a big guest, for one or more builds of the tool side by side.
//
//   measure_base_create [--memory MIB] [--disk MIB] [--disk-data MIB]
//                       [--ram-data MIB] [--runs N] LABEL=CLOUDLET...
//
// Boots the test guest with --memory MiB of RAM (default 2048) and a sparse
// raw data disk of --disk MiB (default 4096), puts --ram-data MiB (default
// 512) of data into the guest's RAM and writes --disk-data MiB (default
// 1024) of pseudo-random data into the disk file in 16 MiB pieces spread
// over it, then for every run and every LABEL=CLOUDLET runs, each under
// /usr/bin/time -v, with a store of its own:
//   CLOUDLET base create DOMAIN     (the guest runs on afterwards)
//   CLOUDLET base show BASE --verify
// and prints wall time and peak RSS of each, and after the last run those of
// `base resume` and `base list` (root, libvirt). Prints numbers;
// decides nothing (docs/base-vms.md).
#include "harness.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

[[noreturn]] void die(const std::string &why) {
	fprintf(stderr, "measure_base_create: %s\n", why.c_str());
	exit(1);
}

std::string guest(th_guest *g, const std::string &cmd) {
	char *out = th_guest_check(g, cmd.c_str(), 900000);
	if (!out)
		die("guest command failed: " + cmd + ": " + th_error());
	std::string s = out;
	free(out);
	return s;
}

std::string slurp(const std::string &path) {
	std::string s;
	if (FILE *f = fopen(path.c_str(), "r")) {
		char buf[4096];
		size_t n;
		while ((n = fread(buf, 1, sizeof buf, f)) > 0)
			s.append(buf, n);
		fclose(f);
	}
	return s;
}

struct Timed {
	int status = -1;
	double wall = 0;
	long max_rss_kib = 0;
	std::string out;
};

// Runs a shell command under /usr/bin/time -v: wall clock and peak RSS.
Timed timed(const std::string &cmd) {
	std::string tfile = "/tmp/measure-base-create-" + std::to_string(getpid()) + ".time";
	std::string full = "/usr/bin/time -v -o '" + tfile + "' " + cmd + " 2>&1";
	Timed t;
	double t0 = now();
	FILE *p = popen(full.c_str(), "r");
	if (!p)
		die("cannot run " + cmd);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, p)) > 0)
		t.out.append(buf, n);
	t.status = pclose(p);
	t.wall = now() - t0;
	std::string tv = slurp(tfile);
	unlink(tfile.c_str());
	const char *key = "Maximum resident set size (kbytes): ";
	size_t at = tv.find(key);
	if (at != std::string::npos)
		t.max_rss_kib = atol(tv.c_str() + at + strlen(key));
	return t;
}

// splitmix64: fast pseudo-random data, different per piece.
void fill(std::vector<uint8_t> &buf, uint64_t seed) {
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		memcpy(&buf[i], &z, 8);
	}
}

} // namespace

int main(int argc, char **argv) {
	unsigned memory = 2048, disk = 4096, disk_data = 1024, ram_data = 512, runs = 1;
	std::vector<std::pair<std::string, std::string>> tools;
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		auto num = [&](unsigned *v) {
			if (i + 1 >= argc)
				die(a + " needs a number");
			*v = static_cast<unsigned>(atoi(argv[++i]));
		};
		if (a == "--memory")
			num(&memory);
		else if (a == "--disk")
			num(&disk);
		else if (a == "--disk-data")
			num(&disk_data);
		else if (a == "--ram-data")
			num(&ram_data);
		else if (a == "--runs")
			num(&runs);
		else if (a.find('=') != std::string::npos)
			tools.push_back({a.substr(0, a.find('=')), a.substr(a.find('=') + 1)});
		else
			die("usage: measure_base_create [--memory MIB] [--disk MIB] [--disk-data MIB] [--ram-data MIB] "
			    "[--runs N] LABEL=CLOUDLET...");
	}
	if (tools.empty())
		die("name at least one LABEL=CLOUDLET");
	if (disk_data > disk)
		die("--disk-data is larger than --disk");
	if (th_setup() != 0)
		die(th_error());
	th_guest_options o{};
	o.memory_mib = memory;
	o.disk_mib = disk;
	th_guest *g = nullptr;
	if (th_guest_start(&g, "basebench", &o) != 0)
		die(th_error());
	const std::string domain = th_guest_domain_name(g);

	double t0 = now();
	// RAM: a 4 MiB random seed copied over and over (the content does not
	// matter to base create: every data page is read and hashed).
	// /ram is a tmpfs of 96 MiB: made large enough first.
	guest(g, "mount -o remount,size=" + std::to_string(ram_data + 16) +
	             "m /ram && dd if=/dev/urandom of=/ram/seed bs=1048576 count=4 2>/dev/null && i=0; while [ $i -lt " +
	             std::to_string(ram_data / 4) + " ]; do cat /ram/seed >> /ram/fill || exit 1; i=$((i+1)); done; sync");
	// Disk: pseudo-random pieces written into the sparse file from the host.
	std::string disk_file = std::string(th_guest_workdir(g)) + "/disk.raw";
	{
		int fd = open(disk_file.c_str(), O_WRONLY);
		if (fd < 0)
			die("cannot open " + disk_file);
		const uint64_t piece = 16u << 20;
		uint64_t pieces = disk_data / 16, stride = pieces ? (uint64_t(disk) << 20) / pieces : 0;
		std::vector<uint8_t> buf(piece);
		for (uint64_t k = 0; k < pieces; k++) {
			fill(buf, k + 1);
			if (pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(k * stride)) != static_cast<ssize_t>(piece))
				die("cannot write " + disk_file);
		}
		fsync(fd);
		close(fd);
	}
	struct stat st;
	stat(disk_file.c_str(), &st);
	printf("guest %s: %u MiB RAM (%u MiB of it data), disk %u MiB (%.0f MiB allocated); prepared in %.1f s\n",
	       domain.c_str(), memory, ram_data, disk, double(st.st_blocks) * 512 / 1048576, now() - t0);

	printf("\n| run | build | create: wall | create: peak RSS | create: hashing (tool's own) | verify: wall | verify: "
	       "peak RSS |\n|---|---|---|---|---|---|---|\n");
	fflush(stdout);
	std::string root = "/var/lib/cloudlet-test/basebench-" + std::to_string(getpid());
	std::string details;
	for (unsigned r = 1; r <= runs; r++) {
		for (const auto &[label, cli] : tools) {
			std::string store = root + "-" + label;
			std::string base = "bench-" + label;
			std::string pre = "'" + cli + "' --store '" + store + "' ";
			Timed c = timed(pre + "base create " + domain + " --name " + base);
			if (c.status != 0)
				die(label + ": base create failed: " + c.out);
			std::string hashing = "?";
			size_t at = c.out.find("hashing ");
			if (at != std::string::npos)
				hashing = c.out.substr(at + 8, c.out.find(',', at) - at - 8);
			Timed v = timed(pre + "base show " + base + " --verify");
			if (v.status != 0)
				die(label + ": base show --verify failed: " + v.out);
			printf("| %u | %s | %.2f s | %ld MiB | %s | %.2f s | %ld MiB |\n", r, label.c_str(), c.wall,
			       c.max_rss_kib / 1024, hashing.c_str(), v.wall, v.max_rss_kib / 1024);
			fflush(stdout);
			if (r == runs) {
				// base resume as well, for its peak RSS (the instance is then
				// destroyed and removed).
				std::string inst = "cltest-" + std::to_string(getpid()) + "-" + label;
				Timed rs = timed(pre + "base resume " + base + " --name " + inst);
				details += "\n" + label + ": base resume " + (rs.status ? "FAILED" : "ok") + ", " +
				           std::to_string(rs.wall).substr(0, 5) + " s, peak RSS " +
				           std::to_string(rs.max_rss_kib / 1024) + " MiB\n";
				std::string destroy = "virsh -q destroy " + inst + " >/dev/null 2>&1; " + pre + "instance remove " + inst;
				if (system(destroy.c_str()) != 0)
					fprintf(stderr, "could not remove instance %s\n", inst.c_str());
				Timed l = timed(pre + "base list");
				details += "\n" + label + ": base show --verify\n" + v.out + label + ": base list (peak RSS " +
				           std::to_string(l.max_rss_kib / 1024) + " MiB)\n" + l.out;
			}
			std::string rm = "rm -rf '" + store + "'";
			if (system(rm.c_str()) != 0)
				fprintf(stderr, "could not remove %s\n", store.c_str());
		}
	}
	printf("%s", details.c_str());
	th_guest_destroy(g);
	return 0;
}
