// Dedup-stage throughput on page-cache data, one core: a 1 GiB base memory
// image and a 1 GiB launch memory in files (mmap), the launch made of
// unchanged pages, zero pages, pages moved within the base, pages that
// changed a little, duplicates and new random pages. Measured beside reading
// the same launch data (XXH3 over it, and `cat FILE > /dev/null`) in the
// same run. Prints numbers; asserts nothing.
//
//   bench_dedup
#include "engine/chunk_index.h"
#include "engine/dedup.h"
#include "image_file.h"
#include "stream_parser.h"
#include "util/mapped_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace cloudlet;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// The base memory as a memory image file (what a base stores).
void make_base(const std::string &path, uint64_t pages, std::vector<uint8_t> &base_copy) {
	qemu::StreamInfo si;
	si.version = 3;
	si.config_section = {0x07, 0, 0, 0, 2, 'p', 'c'};
	si.blocks.push_back({"pc.ram", pages * 4096, 0});
	si.total_pages = pages;
	qemu::ImageFileWriter w(path);
	w.on_ram_blocks(si);
	std::mt19937_64 rng(5);
	base_copy.resize(pages * 4096);
	for (uint64_t p = 0; p < pages; p++) {
		uint8_t *d = base_copy.data() + p * 4096;
		if (p % 5 == 4) {
			memset(d, 0, 4096);
			w.on_page(0, p, nullptr, 0, 0);
			continue;
		}
		for (size_t i = 0; i < 4096; i += 8) {
			uint64_t v = rng() & 0x0f0f0f0f0f0f0f0full; // some structure
			memcpy(d + i, &v, 8);
		}
		w.on_page(0, p, d, 0, 0);
	}
	si.device_state = {0};
	w.finish(si);
}

} // namespace

int main() {
	const uint64_t pages = 1ull << 18; // 1 GiB
	const char *t = getenv("TMPDIR");
	std::string dir = t ? t : "/tmp";
	std::string base_path = dir + "/cloudlet-bench-dedup-base.cltmem", launch_path = dir + "/cloudlet-bench-dedup-launch";
	std::vector<uint8_t> base;
	fprintf(stderr, "writing 1 GiB base and launch images to %s ...\n", dir.c_str());
	make_base(base_path, pages, base);
	// The launch: 60% unchanged, 10% zero, 10% moved base pages, 10% a few
	// bytes changed, 5% duplicates of earlier new pages, 5% new random.
	std::vector<uint8_t> launch(base);
	std::mt19937_64 rng(9);
	for (uint64_t p = 0; p < pages; p++) {
		uint8_t *d = launch.data() + p * 4096;
		uint64_t r = rng() % 100;
		if (r < 60) {
		} else if (r < 70) {
			memset(d, 0, 4096);
		} else if (r < 80) {
			memcpy(d, base.data() + (rng() % pages) * 4096, 4096);
		} else if (r < 90) {
			d[rng() % 4096] ^= 0x5a;
		} else if (r < 95 && p > 1000) {
			memcpy(d, launch.data() + (p - 1 - rng() % 1000) * 4096, 4096);
		} else {
			for (size_t i = 0; i < 4096; i += 8) {
				uint64_t v = rng();
				memcpy(d + i, &v, 8);
			}
		}
	}
	FILE *f = fopen(launch_path.c_str(), "wb");
	fwrite(launch.data(), 1, launch.size(), f);
	fclose(f);
	std::vector<uint8_t>().swap(launch);

	qemu::ImageFile img(base_path);
	std::vector<engine::Hash128> mh =
	    engine::hash_chunks(pages, [&](uint64_t p) { return img.page(p); }, 2);
	engine::write_index(dir + "/cloudlet-bench-dedup.idx", engine::IndexKind::Memory, pages * 4096, mh);
	engine::IndexFile idx(dir + "/cloudlet-bench-dedup.idx");
	MappedFile lm(launch_path);
	std::string cat = "cat '" + launch_path + "' > /dev/null";
	if (system(cat.c_str()) != 0)
		return 1;

	std::vector<double> tcat, thash, tdedup;
	engine::DedupCounts last;
	for (int run = 0; run < 3; run++) {
		double t0 = now();
		if (system(cat.c_str()) != 0)
			return 1;
		tcat.push_back(now() - t0);
		t0 = now();
		uint64_t acc = 0;
		for (uint64_t p = 0; p < pages; p++)
			acc ^= engine::chunk_hash(lm.data() + p * 4096).lo;
		thash.push_back(now() - t0);
		engine::DedupBase db;
		db.memory = &img;
		db.memory_index = &idx;
		engine::Deduper dd(db, dir); // table building is part of the setup, not the stage
		t0 = now();
		for (uint64_t p = 0; p < pages; p++)
			acc += dd.classify(0, p, lm.data() + p * 4096).ref;
		tdedup.push_back(now() - t0);
		last = dd.counts();
		if (acc == 42)
			fprintf(stderr, " ");
	}
	std::sort(tcat.begin(), tcat.end());
	std::sort(thash.begin(), thash.end());
	std::sort(tdedup.begin(), tdedup.end());
	double gb = static_cast<double>(pages * 4096) / 1e9;
	printf("launch memory: %.2f GB; categories: unchanged %llu, zero %llu, base memory %llu, self %llu, data %llu, delta %llu\n",
	       gb, (unsigned long long)last.n[0][0], (unsigned long long)last.n[0][1], (unsigned long long)last.n[0][2],
	       (unsigned long long)last.n[0][4], (unsigned long long)last.n[0][5], (unsigned long long)last.n[0][6]);
	printf("%-40s %8.3f s  %6.2f GB/s\n", "cat FILE > /dev/null", tcat[1], gb / tcat[1]);
	printf("%-40s %8.3f s  %6.2f GB/s\n", "XXH3-128 over every page (1 core)", thash[1], gb / thash[1]);
	printf("%-40s %8.3f s  %6.2f GB/s  (%.2f x cat)\n", "dedup classify, 1 core", tdedup[1], gb / tdedup[1],
	       tcat[1] / tdedup[1]);
	unlink(base_path.c_str());
	unlink(launch_path.c_str());
	unlink((dir + "/cloudlet-bench-dedup.idx").c_str());
	return 0;
}
