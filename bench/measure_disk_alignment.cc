// Does indexing the base disk at 512-byte steps (instead of 4 KiB chunks)
// find more of the base memory's pages on the disk? Guest page-cache pages
// hold file data that a file system with 1 KiB blocks places on the disk at
// 1 KiB (not 4 KiB) alignment.
//
//   measure_disk_alignment [BLOCK_SIZE]     (1024 by default; try 4096)
//
// Boots the test guest, makes an ext2 file system with BLOCK_SIZE blocks on
// its data disk, fills it with files (the guest's own kernel modules and
// random data), drops caches, reads every file back (so the page cache holds
// them), creates a base, and counts the base memory's non-zero pages found
// in the disk index at 4 KiB chunks and at every 512-byte offset, with the
// cost of each index. Prints numbers; decides nothing (docs/base-vms.md).
#include "harness.h"

#include "engine/chunk_index.h"
#include "image_file.h"

#include <cloudlet.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_set>

namespace {

struct HashKey {
	size_t operator()(const cloudlet::engine::Hash128 &h) const { return static_cast<size_t>(h.lo ^ (h.hi * 31)); }
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string run(th_guest *g, const std::string &cmd) {
	char *out = th_guest_check(g, cmd.c_str(), 300000);
	if (!out) {
		fprintf(stderr, "guest command failed: %s\n%s\n", cmd.c_str(), th_error());
		exit(1);
	}
	std::string s = out;
	free(out);
	return s;
}

} // namespace

int main(int argc, char **argv) {
	std::string bs = argc > 1 ? argv[1] : "1024";
	if (th_setup() != 0) {
		fprintf(stderr, "%s\n", th_error());
		return 1;
	}
	th_guest *g = nullptr;
	th_guest_options o = {384, 128, 0, 0, 0};
	if (th_guest_start(&g, "align", &o) != 0) {
		fprintf(stderr, "%s\n", th_error());
		return 1;
	}
	run(g, "mke2fs -q -b " + bs + " /dev/vda && mkdir -p /mnt && mount -t ext2 /dev/vda /mnt");
	run(g, "cp -a /lib/modules /mnt/ && cp /bin/busybox /mnt/ && "
	       "for i in 1 2 3 4 5 6 7 8; do head -c $((i * 700000 + 3000)) /dev/urandom > /mnt/r$i; done && "
	       "for i in $(seq 1 60); do head -c $((i * 9000 + 100)) /dev/urandom > /mnt/s$i; done");
	std::string used = run(g, "sync && echo 3 > /proc/sys/vm/drop_caches && "
	                          "find /mnt -type f -exec cat {} + > /dev/null && du -sk /mnt | cut -f1");
	std::string store = std::string("/var/lib/cloudlet-test/align-store-") + std::to_string(getpid());
	cloudlet_ctx_options co = CLOUDLET_CTX_OPTIONS_INIT;
	co.store_dir = store.c_str();
	cloudlet_ctx *ctx = nullptr;
	cloudlet_ctx_new(&ctx, &co);
	cloudlet_base_options bo = CLOUDLET_BASE_OPTIONS_INIT;
	bo.stop = 1;
	cloudlet_base_info *b = nullptr;
	if (cloudlet_base_create(&b, ctx, th_guest_domain_name(g), &bo) != CLOUDLET_OK) {
		fprintf(stderr, "%s\n", cloudlet_last_error_message());
		return 1;
	}
	th_guest_poweroff(g);
	std::string dir = b->dir;

	cloudlet::qemu::ImageFile mem(dir + "/memory.cltmem");
	int fd = open((dir + "/disk-vda.raw").c_str(), O_RDONLY);
	struct stat st;
	fstat(fd, &st);
	size_t size = static_cast<size_t>(st.st_size);
	const uint8_t *disk = static_cast<const uint8_t *>(mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0));
	close(fd);
	const auto zero = cloudlet::engine::zero_chunk_hash();

	double t0 = now();
	std::unordered_set<cloudlet::engine::Hash128, HashKey> at4k, at512;
	for (size_t off = 0; off + 4096 <= size; off += 4096) {
		auto h = cloudlet::engine::chunk_hash(disk + off);
		if (h != zero)
			at4k.insert(h);
	}
	double t4k = now() - t0;
	t0 = now();
	for (size_t off = 0; off + 4096 <= size; off += 512) {
		auto h = cloudlet::engine::chunk_hash(disk + off);
		if (h != zero)
			at512.insert(h);
	}
	double t512 = now() - t0;

	uint64_t data = 0, hit4k = 0, hit512 = 0;
	for (uint64_t p = 0; p < mem.stream_info().total_pages; p++) {
		const uint8_t *d = mem.page(p);
		if (!d)
			continue;
		auto h = cloudlet::engine::chunk_hash(d);
		if (h == zero)
			continue;
		data++;
		hit4k += at4k.count(h);
		hit512 += at512.count(h);
	}
	printf("ext2 with %s-byte blocks, %s KiB of files read into the page cache; base memory: %llu non-zero pages\n",
	       bs.c_str(), used.c_str(), static_cast<unsigned long long>(data));
	printf("%-26s %10s %12s %14s %12s\n", "disk index", "entries", "index bytes", "pages found", "build time");
	printf("%-26s %10zu %12zu %8llu (%4.1f%%) %9.3f s\n", "4 KiB chunks", size / 4096, size / 4096 * 16,
	       static_cast<unsigned long long>(hit4k), 100.0 * static_cast<double>(hit4k) / static_cast<double>(data), t4k);
	printf("%-26s %10zu %12zu %8llu (%4.1f%%) %9.3f s\n", "every 512-byte offset", size / 512, size / 512 * 16,
	       static_cast<unsigned long long>(hit512), 100.0 * static_cast<double>(hit512) / static_cast<double>(data),
	       t512);
	printf("512-step gain: %llu more pages (%.1f%% of non-zero memory) for %.0fx the index\n",
	       static_cast<unsigned long long>(hit512 - hit4k),
	       100.0 * static_cast<double>(hit512 - hit4k) / static_cast<double>(data), 8.0);
	cloudlet_base_remove(ctx, b->id);
	cloudlet_base_info_free(b);
	cloudlet_ctx_free(ctx);
	th_guest_destroy(g);
	std::string rm = "rm -rf '" + store + "'";
	return system(rm.c_str()) == 0 ? 0 : 0;
}
