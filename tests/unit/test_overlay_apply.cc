// Applying an overlay is exact: a synthetic base (memory pages and a raw
// disk file) and a launch VM derived from it with every dedup category in
// both memory and disk (unchanged, zero, moved base pages, base disk data
// at 4 KiB and 512-byte offsets, repeats, new data, small edits stored as
// XOR, a disk grown past its base) go through the real deduper, writer and
// reader (one and two decoding threads); every launch page the applier
// serves and every byte of the qcow2 layer it writes (read by qemu-img)
// must equal the launch VM's.
#include "engine/chunk_index.h"
#include "engine/dedup.h"
#include "engine/handoff_items.h"
#include "engine/overlay_apply.h"
#include "format/overlay_file.h"
#include "memory_image.h"
#include "util/error.h"

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "vector_sink.h"

using namespace cloudlet;
using chunk::ChunkKind;

namespace {

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
	std::vector<uint8_t> v(n);
	std::mt19937 rng(seed);
	for (auto &b : v)
		b = static_cast<uint8_t>(rng());
	return v;
}

void write_file(const std::string &path, const std::vector<uint8_t> &b) {
	std::ofstream f(path, std::ios::binary);
	f.write(reinterpret_cast<const char *>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::vector<uint8_t> read_file(const std::string &path) {
	std::ifstream f(path, std::ios::binary);
	return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

} // namespace

static void apply_and_compare(unsigned threads) {
	char tmpl[] = "/tmp/cloudlet-apply-XXXXXX";
	std::string dir = mkdtemp(tmpl);
	const uint64_t pages = 512;
	const size_t disk_bytes = 1 << 20, launch_disk_bytes = (1 << 20) + 64 * 1024;

	// The base.
	qemu::MemoryImage base_mem;
	base_mem.info.blocks = {{"pc.ram", pages * 4096, 0}};
	base_mem.info.total_pages = pages;
	base_mem.reset_pages(pages);
	auto noise = random_bytes(pages * 4096, 1);
	for (uint64_t p = 0; p < pages; p++)
		base_mem.set_page(p, p % 5 == 4 ? nullptr : noise.data() + p * 4096, 0);
	qemu::MemoryImageProvider base_memp(base_mem);
	std::vector<uint8_t> base_disk = random_bytes(disk_bytes, 2);
	write_file(dir + "/base.raw", base_disk);

	// The launch VM: the base, then every kind of change.
	std::vector<std::vector<uint8_t>> launch(pages);
	for (uint64_t p = 0; p < pages; p++)
		launch[p] = base_mem.data(p) ? std::vector<uint8_t>(base_mem.data(p), base_mem.data(p) + 4096)
		                             : std::vector<uint8_t>(4096, 0);
	auto fresh = random_bytes(64 * 4096, 3);
	for (uint64_t p = 10; p < 20; p++)
		launch[p].assign(4096, 0); // zeroed
	for (uint64_t p = 20; p < 30; p++)
		launch[p] = launch[p + 100]; // moved base pages
	for (uint64_t p = 30; p < 40; p++)
		launch[p].assign(base_disk.begin() + p * 4096, base_disk.begin() + p * 4096 + 4096); // base disk, aligned
	for (uint64_t p = 40; p < 45; p++)
		launch[p].assign(base_disk.begin() + p * 4096 + 1536, base_disk.begin() + p * 4096 + 1536 + 4096); // 512-step
	for (uint64_t p = 50; p < 114; p++)
		launch[p].assign(fresh.begin() + (p - 50) * 4096, fresh.begin() + (p - 50) * 4096 + 4096); // new
	for (uint64_t p = 114; p < 130; p++)
		launch[p] = launch[p - 64]; // repeats of new pages
	for (uint64_t p = 130; p < 140; p++)
		launch[p][p] ^= 0xff; // small edits: XOR
	// Copies of new data at in-page offsets, as freed heap and socket
	// buffers hold them: 48 bytes of something else, then the new pages.
	std::vector<uint8_t> buffered = random_bytes(48, 5);
	buffered.insert(buffered.end(), fresh.begin(), fresh.begin() + 16 * 4096);
	for (uint64_t p = 140; p < 156; p++)
		launch[p].assign(buffered.begin() + (p - 140) * 4096, buffered.begin() + (p - 140) * 4096 + 4096);
	std::vector<uint8_t> launch_disk(base_disk);
	launch_disk.resize(launch_disk_bytes, 0);
	memcpy(launch_disk.data() + 8 * 4096, fresh.data(), 16 * 4096);               // new (also in memory: SELF)
	memcpy(launch_disk.data() + 200 * 4096 + 212, fresh.data(), 8 * 4096); // chunks 8.. again, 212 bytes in: shifted
	memset(launch_disk.data() + 40 * 4096, 0, 8 * 4096);                          // zeroed
	memcpy(launch_disk.data() + 60 * 4096, noise.data() + 200 * 4096, 4 * 4096);  // base memory pages
	memcpy(launch_disk.data() + 70 * 4096, base_disk.data() + 512, 4 * 4096);     // base disk, shifted 512
	launch_disk[100 * 4096 + 7] ^= 1;                                            // XOR
	auto tail = random_bytes(64 * 1024, 4);
	memcpy(launch_disk.data() + disk_bytes, tail.data(), tail.size());            // grown past the base

	// Dedup + write, as overlay create does.
	std::vector<engine::Hash128> mh;
	for (uint64_t p = 0; p < pages; p++)
		mh.push_back(base_mem.data(p) ? engine::chunk_hash(base_mem.data(p)) : engine::zero_chunk_hash());
	engine::write_index(dir + "/m.idx", engine::IndexKind::Memory, pages * 4096, mh);
	engine::write_index(dir + "/d.idx", engine::IndexKind::Disk, disk_bytes, engine::hash_range(base_disk.data(), disk_bytes, 1));
	engine::write_index(dir + "/d.idx512", engine::IndexKind::DiskSectors, disk_bytes,
	                    engine::hash_sector_windows(base_disk.data(), disk_bytes, 1));
	engine::IndexFile mi(dir + "/m.idx"), di(dir + "/d.idx"), ds(dir + "/d.idx512");
	engine::DedupBase db;
	db.memory = &base_memp;
	db.memory_index = &mi;
	db.disks.push_back({base_disk.data(), disk_bytes, &di, &ds});
	engine::Deduper dd(db, dir);
	format::OverlayHeader h;
	h.base_id = std::string(64, 'b');
	h.ram_blocks = {{"pc.ram", pages * 4096}};
	h.total_pages = pages;
	h.disks = {{"vda", launch_disk_bytes}};
	h.domain_xml = "<domain/>";
	VectorSink out;
	{
		format::OverlayWriter w(out, h, chunk::Codec::Zstd, 3, 64 * 1024, threads);
		auto add = [&](uint8_t space, uint64_t chunk, const uint8_t *data) {
			engine::DedupDecision d = dd.classify(space, chunk, data);
			if (d.unchanged)
				return;
			if (chunk::stores_payload(d.kind))
				w.add_data(d.record(space, chunk), d.payload);
			else
				w.add_ref(space, chunk, d.kind, d.ref);
		};
		// Disks first, as overlay create does (format version 2: memory may
		// refer to disk chunks, not the other way round).
		for (uint64_t c = 0; c < launch_disk_bytes / 4096; c++)
			add(1, c, launch_disk.data() + c * 4096);
		for (uint64_t p = 0; p < pages; p++)
			add(0, p, launch[p].data());
		w.finish(std::vector<uint8_t>(100, 0x42));
	}
	const auto &n = dd.counts();
	for (int space = 0; space < 2; space++)
		for (int k = 1; k < chunk::kChunkKinds; k++)
			print_message("# space %d kind %d: %llu\n", space, k, (unsigned long long)n.n[space][k]);
	// Every category was exercised somewhere.
	for (int k = 1; k < chunk::kChunkKinds; k++)
		assert_true(n.n[0][k] + n.n[1][k] > 0);
	// The shifted copies are found: all 16 memory pages (each but the first
	// overlaps two stored pages; one is enough) and the 9 disk chunks the
	// 212-byte-shifted copy touches, but for a first chunk too short to match.
	constexpr int kShift = static_cast<int>(chunk::ChunkKind::ShiftXor);
	assert_true(n.n[0][kShift] >= 15);
	assert_true(n.n[1][kShift] >= 8);

	// Apply.
	engine::ApplyBase ab;
	MappedFile base_map(dir + "/base.raw");
	ab.memory = &base_memp;
	ab.disks.push_back({base_map.data(), base_map.size(), dir + "/base.raw"});
	Progress progress;
	engine::OverlayApplier applier(ab, h, {dir + "/layer.qcow2"}, dir, progress);
	qemu::MemorySource src(out.bytes.data(), out.bytes.size());
	qemu::Reader r(src, "overlay");
	format::BaseBounds bounds;
	bounds.known = true;
	bounds.memory_pages = pages;
	bounds.disk_bytes = {disk_bytes};
	format::read_overlay(r, applier, bounds, threads);
	applier.finish();

	assert_int_equal(applier.stream_info().total_pages, pages);
	assert_int_equal(applier.stream_info().device_state.size(), 100);
	{
		// A header (an overlay's or a handoff OFFER's) claiming far more RAM
		// than the base has is refused before the page table is sized by it.
		format::OverlayHeader huge = h;
		huge.ram_blocks = {{"pc.ram", 1ull << 40}};
		huge.total_pages = 1ull << 28;
		try {
			engine::OverlayApplier big(ab, huge, {dir + "/layer2.qcow2"}, dir, progress);
			fail_msg("an applier for 1 TiB of launch RAM over a base of %llu pages was made", (unsigned long long)pages);
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
			print_message("# %s\n", e.what());
		}
	}
	for (uint64_t p = 0; p < pages; p++) {
		const uint8_t *got = applier.page(p);
		std::vector<uint8_t> zero(4096, 0);
		if (memcmp(got ? got : zero.data(), launch[p].data(), 4096) != 0)
			fail_msg("launch page %llu differs after apply", (unsigned long long)p);
	}
	std::string cmd = "qemu-img check -q -f qcow2 '" + dir + "/layer.qcow2' && qemu-img convert -f qcow2 -O raw '" +
	                  dir + "/layer.qcow2' '" + dir + "/out.raw'";
	assert_int_equal(system(cmd.c_str()), 0);
	std::vector<uint8_t> got = read_file(dir + "/out.raw");
	assert_int_equal(got.size(), launch_disk.size());
	for (size_t i = 0; i < got.size(); i += 4096)
		if (memcmp(got.data() + i, launch_disk.data() + i, 4096) != 0)
			fail_msg("disk chunk %zu differs after apply", i / 4096);
	std::string rm = "rm -rf '" + dir + "'";
	assert_int_equal(system(rm.c_str()), 0);
}

static void test_apply_exact_one_thread(void **) { apply_and_compare(1); }
static void test_apply_exact_two_threads(void **) { apply_and_compare(2); }

// Handoff: shifted deltas name the n-th stored chunk of the session; they
// cross an ITEMS batch and apply exactly; a bad shift or a reference to a
// chunk not stored yet is refused.
static void test_shifted_items_versioned(void **) {
	char tmpl[] = "/tmp/cloudlet-shift-XXXXXX";
	std::string dir = mkdtemp(tmpl);
	const uint64_t pages = 16;
	qemu::MemoryImage base_mem;
	base_mem.info.blocks = {{"pc.ram", pages * 4096, 0}};
	base_mem.info.total_pages = pages;
	base_mem.reset_pages(pages);
	qemu::MemoryImageProvider base_memp(base_mem);
	write_file(dir + "/base.raw", std::vector<uint8_t>(64 * 1024, 0));
	engine::DedupBase db;
	db.memory = &base_memp;
	engine::Deduper dd(db, dir);
	dd.use_ordinal_self_refs();
	auto fresh = random_bytes(3 * 4096, 7);
	std::vector<std::vector<uint8_t>> launch(4, std::vector<uint8_t>(4096));
	memcpy(launch[0].data(), fresh.data(), 4096);
	memcpy(launch[1].data(), fresh.data() + 4096, 4096);
	memcpy(launch[2].data() + 212, fresh.data(), 4096 - 212);  // fresh page 0, 212 bytes in
	memcpy(launch[3].data(), fresh.data() + 4096 + 48, 4096 - 48); // fresh page 1 from byte 48
	engine::ItemBatch batch;
	for (uint64_t p = 0; p < 4; p++) {
		engine::DedupDecision d = dd.classify(0, p, launch[p].data());
		if (p >= 2) {
			assert_int_equal(static_cast<int>(d.kind), static_cast<int>(ChunkKind::ShiftXor));
			assert_int_equal(d.ref, p - 2);
			assert_int_equal(d.shift, p == 2 ? -212 : 48);
		}
		batch.add(d.record(0, p), 1, d.payload);
	}
	auto frame = batch.encode(chunk::Codec::Zstd, 3);
	// Two shifted pages of mostly zero XOR: the batch is about two pages.
	assert_true(frame.size() < 2 * 4096 + 1024);

	engine::ApplyBase ab;
	MappedFile base_map(dir + "/base.raw");
	ab.memory = &base_memp;
	ab.disks.push_back({base_map.data(), base_map.size(), dir + "/base.raw"});
	format::OverlayHeader h;
	h.base_id = std::string(64, 'b');
	h.ram_blocks = {{"pc.ram", pages * 4096}};
	h.total_pages = pages;
	h.disks = {{"vda", 64 * 1024}};
	Progress progress;
	engine::OverlayApplier applier(ab, h, {dir + "/layer.qcow2"}, dir, progress);
	applier.set_versioned();
	engine::decode_item_batch(frame, 1, [&](const chunk::ChunkRecord &r, uint64_t v, const uint8_t *data) {
		applier.apply_versioned(r, data, v);
	});
	applier.finish();
	for (uint64_t p = 0; p < 4; p++)
		assert_memory_equal(applier.page(p), launch[p].data(), 4096);

	auto refused = [&](const chunk::ChunkRecord &r) {
		engine::ItemBatch b;
		b.add(r, 2, launch[0].data());
		auto f = b.encode(chunk::Codec::None, 0);
		try {
			engine::decode_item_batch(f, 1, [&](const chunk::ChunkRecord &rr, uint64_t v, const uint8_t *data) {
				applier.apply_versioned(rr, data, v);
			});
			fail_msg("accepted a shifted item with ref %llu shift %d", (unsigned long long)r.ref, r.shift);
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
		}
	};
	refused({0, ChunkKind::ShiftXor, 5, 0, 0});     // no shift
	refused({0, ChunkKind::ShiftXor, 5, 0, 4096});  // beyond a chunk
	refused({0, ChunkKind::ShiftXor, 5, 99, 8});    // a stored chunk that does not exist
	std::string rm = "rm -rf '" + dir + "'";
	assert_int_equal(system(rm.c_str()), 0);
}

int main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_apply_exact_one_thread),
	    cmocka_unit_test(test_apply_exact_two_threads),
	    cmocka_unit_test(test_shifted_items_versioned),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
