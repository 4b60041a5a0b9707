// Index building throughput: XXH3-128 per 4 KiB chunk of a >= 1 GiB file in
// the page cache (mmap, as base creation reads a disk), on one core and on
// all cores, beside `cat FILE > /dev/null` and SHA-256 of the same file,
// all measured in the same run.
//
//   bench_index [FILE]
//
// Without FILE, a 1 GiB file of pseudo-random data is written to
// $TMPDIR/cloudlet-bench-index-1g.bin once and reused. Prints the median of
// 5 runs of each and the ratios to cat; asserts nothing.
#include "chunk/sha256.h"
#include "engine/chunk_index.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
	std::sort(v.begin(), v.end());
	return v[v.size() / 2];
}

void make_file(const std::string &path) {
	FILE *f = fopen(path.c_str(), "wb");
	if (!f) {
		perror(path.c_str());
		exit(1);
	}
	std::mt19937_64 rng(3);
	std::vector<uint64_t> buf(1 << 17); // 1 MiB
	for (int mib = 0; mib < 1024; mib++) {
		for (auto &x : buf)
			x = rng();
		if (mib % 8 == 7)
			std::fill(buf.begin(), buf.end(), 0); // some zero runs, as disks have
		fwrite(buf.data(), 8, buf.size(), f);
	}
	fclose(f);
}

} // namespace

int main(int argc, char **argv) {
	std::string path;
	if (argc > 1) {
		path = argv[1];
	} else {
		const char *t = getenv("TMPDIR");
		path = std::string(t ? t : "/tmp") + "/cloudlet-bench-index-1g.bin";
		struct stat st;
		if (stat(path.c_str(), &st) != 0 || st.st_size != (1ll << 30)) {
			fprintf(stderr, "writing 1 GiB of test data to %s ...\n", path.c_str());
			make_file(path);
		}
	}
	int fd = open(path.c_str(), O_RDONLY);
	if (fd < 0) {
		perror(path.c_str());
		return 1;
	}
	struct stat st;
	fstat(fd, &st);
	size_t size = static_cast<size_t>(st.st_size);
	const uint8_t *map = static_cast<const uint8_t *>(mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0));
	close(fd);
	if (map == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	double gb = static_cast<double>(size) / 1e9;
	std::string cat = "cat '" + path + "' > /dev/null";
	if (system(cat.c_str()) != 0) // warm the page cache
		return 1;
	unsigned cores = std::max(1u, std::thread::hardware_concurrency());
	std::vector<double> tcat, t1, tn, tsha;
	uint64_t sink = 0;
	for (int run = 0; run < 5; run++) {
		double t0 = now();
		if (system(cat.c_str()) != 0)
			return 1;
		tcat.push_back(now() - t0);
		t0 = now();
		auto h1 = cloudlet::engine::hash_range(map, size, 1);
		t1.push_back(now() - t0);
		t0 = now();
		auto hn = cloudlet::engine::hash_range(map, size, cores);
		tn.push_back(now() - t0);
		sink += h1[run].lo ^ hn[run].hi;
		t0 = now();
		cloudlet::chunk::sha256_file(path);
		tsha.push_back(now() - t0);
	}
	double c = median(tcat), a = median(t1), b = median(tn), s = median(tsha);
	printf("file: %s (%.2f GB, %zu chunks of 4 KiB)\n", path.c_str(), gb, size / 4096);
	printf("%-34s %8.3f s  %6.2f GB/s\n", "cat FILE > /dev/null", c, gb / c);
	printf("%-34s %8.3f s  %6.2f GB/s  (%.2f x cat)\n", "XXH3-128 index, 1 core (mmap)", a, gb / a, c / a);
	printf("%-34s %8.3f s  %6.2f GB/s  (%.2f x cat)\n",
	       ("XXH3-128 index, " + std::to_string(cores) + " cores (mmap)").c_str(), b, gb / b, c / b);
	printf("%-34s %8.3f s  %6.2f GB/s  (%.2f x cat)\n", "SHA-256 of the file, 1 core", s, gb / s, c / s);
	fprintf(stderr, "(checksum %llx)\n", static_cast<unsigned long long>(sink));
	munmap(const_cast<uint8_t *>(map), size);
	return 0;
}
