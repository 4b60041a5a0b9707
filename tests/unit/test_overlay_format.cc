// The overlay container (docs/formats/overlay.md) and the block codecs:
// every record kind and codec round-trips through writer and reader; the
// reader refuses truncations, flips, bad references, duplicate chunks and
// trailing data with CLOUDLET_E_CORRUPT (never a crash: also under ASan).
#include "byte_reader.h"
#include "chunk/chunk_ref.h"
#include "chunk/block_codec.h"
#include "engine/chunk_table.h"
#include "engine/dedup.h"
#include "memory_image.h"
#include "format/overlay_file.h"
#include "stream_writer.h"
#include "util/base64.h"
#include "util/error.h"

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <new>
#include <unistd.h>
#include <atomic>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "largest_alloc.h"
#include "vector_sink.h"

using namespace cloudlet;
using chunk::ChunkKind;


namespace {

struct Collected : format::OverlaySink {
	format::OverlayHeader header;
	std::vector<chunk::ChunkRecord> records;
	std::vector<std::vector<uint8_t>> data;
	std::vector<uint8_t> device_state;
	void on_header(const format::OverlayHeader &h) override { header = h; }
	std::vector<uint8_t> named;
	size_t start_after = SIZE_MAX; // records before the start block
	void on_device_state(const std::vector<uint8_t> &d) override { device_state = d; }
	void on_start(const std::vector<uint8_t> &n) override {
		named = n;
		start_after = records.size();
	}
	void on_chunk(const chunk::ChunkRecord &r, const uint8_t *d) override {
		records.push_back(r);
		data.emplace_back(d ? std::vector<uint8_t>(d, d + 4096) : std::vector<uint8_t>());
	}
};

format::OverlayHeader sample_header() {
	format::OverlayHeader h;
	h.base_id = std::string(64, 'a');
	h.ram_blocks = {{"pc.ram", 64 << 20}, {"vga.vram", 16 << 20}};
	h.total_pages = (80 << 20) / 4096;
	h.ram_section_id = 3;
	h.ram_version = 4;
	h.config_section = {7, 0, 0, 0, 2, 'p', 'c'};
	h.disks = {{"vda", 64 << 20}, {"vdb", 8 << 20}};
	h.domain_xml = "<domain/>";
	h.created = "2026-11-25T00:00:00Z";
	h.creator = "test";
	return h;
}

std::vector<uint8_t> page(uint32_t seed, bool compressible) {
	std::vector<uint8_t> p(4096);
	std::mt19937 rng(seed);
	for (size_t i = 0; i < p.size(); i++)
		p[i] = compressible ? static_cast<uint8_t>("hello overlay "[i % 14] + (seed & 3)) : static_cast<uint8_t>(rng());
	return p;
}

// An overlay with every kind of record. Version 2 keeps disk records before
// memory records in the file whatever order they are added in (`expect`
// gets file order), and a disk record may not refer to memory there.
std::vector<uint8_t> build(chunk::Codec codec, size_t segment_bytes, std::vector<chunk::ChunkRecord> *expect,
                           unsigned threads = 1, uint32_t version = format::kOverlayVersion) {
	VectorSink out;
	format::OverlayWriter w(out, sample_header(), codec, codec == chunk::Codec::Lzma ? 1 : 3, segment_bytes, threads,
	                        version);
	// Version 2 orders memory records too: those without payload or with a
	// delta against their base page first, then data and what refers to it.
	std::vector<chunk::ChunkRecord> memory, memory_first, disk;
	auto &mem_or_all = version == 1 ? *expect : memory;
	auto &first_or_all = version == 1 ? *expect : memory_first;
	auto &disk_or_all = version == 1 ? *expect : disk;
	for (uint32_t i = 0; i < 300; i++) {
		auto p = page(i, i % 2);
		w.add_data(0, i * 7, p.data());
		mem_or_all.push_back({0, ChunkKind::Data, i * 7, 0});
	}
	w.add_ref(0, 5000, ChunkKind::Zero, 0);
	first_or_all.push_back({0, ChunkKind::Zero, 5000, 0});
	w.add_ref(0, 5001, ChunkKind::BaseMemory, 123);
	first_or_all.push_back({0, ChunkKind::BaseMemory, 5001, 123});
	w.add_ref(1, 10, ChunkKind::BaseDisk, chunk::pack_ref(0, 512 * 9));
	disk_or_all.push_back({1, ChunkKind::BaseDisk, 10, 512 * 9});
	auto p = page(999, false);
	if (version == 1) {
		w.add_ref(2, 3, ChunkKind::Self, 7); // memory chunk 7 (space 0) was stored
		disk_or_all.push_back({2, ChunkKind::Self, 3, 7});
		w.add_data(2, 4, p.data());
		disk_or_all.push_back({2, ChunkKind::Data, 4, 0});
	} else {
		w.add_data(2, 4, p.data());
		disk_or_all.push_back({2, ChunkKind::Data, 4, 0});
		w.add_ref(2, 3, ChunkKind::Self, chunk::pack_ref(2, 4)); // disk chunk 4 of vdb was stored
		disk_or_all.push_back({2, ChunkKind::Self, 3, chunk::pack_ref(2, 4)});
	}
	w.add_data(0, 6000, p.data(), ChunkKind::DataXor);
	first_or_all.push_back({0, ChunkKind::DataXor, 6000, 0});
	w.add_data({0, ChunkKind::ShiftXor, 6001, 7, -48}, p.data()); // against memory chunk 7, 48 bytes later
	mem_or_all.push_back({0, ChunkKind::ShiftXor, 6001, 7, -48});
	w.finish(std::vector<uint8_t>(1000, 0x5a));
	if (version != 1) {
		expect->insert(expect->end(), disk.begin(), disk.end());
		expect->insert(expect->end(), memory_first.begin(), memory_first.end());
		expect->insert(expect->end(), memory.begin(), memory.end());
	}
	return out.bytes;
}

format::OverlayCounts read_all(const std::vector<uint8_t> &b, Collected &c, const format::BaseBounds &bounds = {}) {
	qemu::MemorySource src(b.data(), b.size());
	qemu::Reader r(src, "overlay");
	return format::read_overlay(r, c, bounds);
}

} // namespace

static void test_codecs(void **) {
	std::vector<uint8_t> data(1 << 20);
	for (size_t i = 0; i < data.size(); i++)
		data[i] = static_cast<uint8_t>(i % 251 < 200 ? 'x' : i);
	for (auto c : {chunk::Codec::None, chunk::Codec::Zstd, chunk::Codec::Lzma}) {
		std::vector<uint8_t> z, back(data.size());
		chunk::compress_block(c, -1, data.data(), data.size(), z);
		if (c != chunk::Codec::None)
			assert_true(z.size() < data.size() / 4);
		chunk::decompress_block(c, z.data(), z.size(), back.data(), back.size(), "t");
		assert_memory_equal(back.data(), data.data(), data.size());
		// Wrong size or damage: refused, never more than asked for.
		try {
			chunk::decompress_block(c, z.data(), z.size(), back.data(), back.size() - 1, "t");
			fail_msg("%s: a short output buffer was accepted", chunk::codec_name(c));
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
		}
		if (c != chunk::Codec::None) {
			z[z.size() / 2] ^= 0xff;
			try {
				chunk::decompress_block(c, z.data(), z.size(), back.data(), back.size(), "t");
				// zstd without a checksum may decode a flip to other bytes;
				// the overlay's payload checksum catches that.
			} catch (const Error &e) {
				assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
			}
		}
	}
	assert_true(chunk::codec_from_name("xz") == chunk::Codec::Lzma);
	try {
		chunk::codec_from_name("gzip");
		fail_msg("unknown codec accepted");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_INVALID_ARG);
	}
	std::vector<uint8_t> bin = {0, 1, 2, 250, 255};
	for (size_t n = 0; n <= bin.size(); n++) {
		std::vector<uint8_t> part(bin.begin(), bin.begin() + static_cast<long>(n));
		assert_true(base64_decode(base64_encode(part), "t") == part);
	}
}

static void test_round_trip(void **) {
	for (uint32_t version : {1u, 2u})
	for (auto codec : {chunk::Codec::None, chunk::Codec::Zstd, chunk::Codec::Lzma}) {
		for (size_t seg : {size_t(4096 * 7), size_t(4 << 20)}) {
			std::vector<chunk::ChunkRecord> expect, again;
			auto bytes = build(codec, seg, &expect, 1, version);
			// Compressing segments on several threads changes nothing in the file.
			assert_true(build(codec, seg, &again, 3, version) == bytes);
			Collected c;
			format::OverlayCounts n = read_all(bytes, c);
			assert_int_equal(n.version, version);
			if (version == 2) {
				// The start block: after every disk chunk, before any memory
				// chunk, naming exactly the memory pages the segments hold.
				assert_int_equal(c.start_after, n.disk_records);
				assert_int_equal(c.named.size(), (sample_header().total_pages + 7) / 8);
				uint64_t set = 0;
				for (uint8_t b : c.named)
					set += static_cast<uint64_t>(__builtin_popcount(b));
				assert_int_equal(set, n.memory_records);
				for (const auto &r : c.records)
					if (r.space == 0)
						assert_true(c.named[r.chunk / 8] >> (r.chunk % 8) & 1);
			}
			assert_string_equal(c.header.base_id.c_str(), std::string(64, 'a').c_str());
			assert_int_equal(c.header.disks.size(), 2);
			assert_true(c.device_state == std::vector<uint8_t>(1000, 0x5a));
			assert_int_equal(c.records.size(), expect.size());
			for (size_t i = 0; i < expect.size(); i++) {
				assert_int_equal(c.records[i].space, expect[i].space);
				assert_int_equal(static_cast<int>(c.records[i].kind), static_cast<int>(expect[i].kind));
				assert_int_equal(c.records[i].chunk, expect[i].chunk);
				assert_int_equal(c.records[i].ref, expect[i].ref);
				assert_int_equal(c.records[i].shift, expect[i].shift);
			}
			size_t first_memory = version == 1 ? 0 : n.disk_records + 3; // after Zero, BaseMemory, DataXor
			for (uint32_t i = 0; i < 300; i++)
				assert_true(c.data[first_memory + i] == page(i, i % 2));
			assert_int_equal(n.records[static_cast<int>(ChunkKind::Data)], 301);
			assert_int_equal(n.records[static_cast<int>(ChunkKind::DataXor)], 1);
			assert_int_equal(n.memory_records + n.disk_records, expect.size());
			assert_int_equal(n.file_bytes, bytes.size());
			if (codec != chunk::Codec::None)
				assert_true(n.stored_bytes < n.payload_bytes);
		}
	}
}

static void test_references_checked_against_base(void **) {
	std::vector<chunk::ChunkRecord> expect;
	auto bytes = build(chunk::Codec::Zstd, 4 << 20, &expect);
	Collected c;
	format::BaseBounds ok{true, 6001, {64 << 20, 8 << 20}};
	read_all(bytes, c, ok);
	format::BaseBounds small{true, 100, {64 << 20, 8 << 20}}; // page 123 does not exist
	try {
		Collected c2;
		read_all(bytes, c2, small);
		fail_msg("a reference beyond the base was accepted");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
		assert_non_null(strstr(e.what(), "base memory page 123"));
	}
	// A launch VM with more RAM than its base can have (1 TiB against 6001
	// pages) is refused from the header, before anything is sized by it.
	{
		VectorSink out;
		format::OverlayHeader h = sample_header();
		h.ram_blocks = {{"pc.ram", 1ull << 40}};
		h.total_pages = 1ull << 28;
		format::OverlayWriter w(out, h, chunk::Codec::Zstd, 3, 1 << 20);
		w.add_ref(0, 1, ChunkKind::Zero, 0);
		w.finish({});
		Collected c4;
		read_all(out.bytes, c4); // fine without a base
		try {
			Collected c5;
			read_all(out.bytes, c5, ok);
			fail_msg("a launch VM of 1 TiB over a base of 6001 pages was accepted");
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
			assert_non_null(strstr(e.what(), "268435456 pages"));
		}
	}
	format::BaseBounds wrong_disks{true, 200, {64 << 20}};
	try {
		Collected c3;
		read_all(bytes, c3, wrong_disks);
		fail_msg("a base with another disk count was accepted");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
	}
}

static void test_writer_misuse_is_refused_by_reader(void **) {
	auto refused = [](auto fill, const char *what) {
		VectorSink out;
		// Version 1: the reader's checks, not the version 2 writer's own.
		format::OverlayWriter w(out, sample_header(), chunk::Codec::Zstd, 3, 1 << 20, 1, 1);
		fill(w);
		w.finish({});
		Collected c;
		try {
			read_all(out.bytes, c);
			fail_msg("accepted: %s", what);
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
		}
	};
	auto p = page(1, false);
	refused([&](format::OverlayWriter &w) { w.add_ref(0, 1, ChunkKind::Zero, 0); w.add_ref(0, 1, ChunkKind::Zero, 0); },
	        "a chunk named twice");
	refused([&](format::OverlayWriter &w) { w.add_ref(0, 1, ChunkKind::Self, 2); }, "self before data");
	refused([&](format::OverlayWriter &w) { w.add_data({0, ChunkKind::ShiftXor, 1, 2, 100}, p.data()); },
	        "shifted delta before its reference");
	refused([&](format::OverlayWriter &w) { w.add_data(3, 0, p.data()); }, "a space that does not exist");
	refused([&](format::OverlayWriter &w) { w.add_data(0, 1u << 30, p.data()); }, "a chunk beyond memory");
	refused([&](format::OverlayWriter &w) { w.add_ref(1, 0, ChunkKind::BaseDisk, 100); }, "unaligned disk reference");
}

static void test_damage(void **) {
	for (uint32_t version : {1u, 2u}) {
	std::vector<chunk::ChunkRecord> expect;
	auto good = build(chunk::Codec::Zstd, 4096 * 50, &expect, 1, version);
	std::mt19937 rng(11);
	int cases = 0;
	auto check_refused = [&](const std::vector<uint8_t> &b) {
		Collected c;
		try {
			read_all(b, c);
			fail_msg("a damaged overlay (case %d) was accepted", cases);
		} catch (const Error &e) {
			if (e.status() != CLOUDLET_E_CORRUPT && e.status() != CLOUDLET_E_UNSUPPORTED)
				fail_msg("case %d: status %d (%s)", cases, e.status(), e.what());
		}
		cases++;
	};
	for (size_t cut = 0; cut < good.size(); cut += 1 + good.size() / 97)
		check_refused(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(cut)));
	check_refused(std::vector<uint8_t>(good.begin(), good.end() - 1));
	for (int i = 0; i < 300; i++) {
		auto b = good;
		size_t off = i < 100 ? rng() % 4000 : rng() % b.size();
		b[off] ^= static_cast<uint8_t>(1u << (rng() % 8));
		check_refused(b);
	}
	auto trailing = good;
	trailing.push_back(0);
	check_refused(trailing);
	print_message("# version %u: %d damaged overlays refused\n", version, cases);
	}
}

// Version 2's own rules, each broken by a writer that knows no better
// (version 1 bytes relabelled, a start block moved): refused, never applied.
static void test_version2_layout_enforced(void **) {
	std::vector<chunk::ChunkRecord> expect;
	auto v1 = build(chunk::Codec::Zstd, 4 << 20, &expect, 1, 1);
	auto relabelled = v1;
	relabelled[8] = 2; // a version 1 file (no start block, disk after memory) called version 2
	// Its header checksum now differs too, but the layout is refused first.
	Collected c;
	try {
		read_all(relabelled, c);
		fail_msg("a version 1 layout read as version 2");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
		print_message("# %s\n", e.what());
	}
	// The writer refuses what version 2 cannot hold.
	VectorSink out;
	format::OverlayWriter w(out, sample_header(), chunk::Codec::Zstd, 3, 1 << 20);
	auto p = page(3, false);
	w.add_data(0, 7, p.data());
	try {
		w.add_ref(1, 3, ChunkKind::Self, 7);
		fail_msg("a version 2 disk record referring to memory was written");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_INTERNAL);
	}
	// Unknown versions are unsupported, not corrupt.
	auto v3 = v1;
	v3[8] = 3;
	try {
		Collected c3;
		read_all(v3, c3);
		fail_msg("version 3 accepted");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_UNSUPPORTED);
	}
}

// Decompression bombs: a block that would decode to far more than the
// record says (here 64 MiB of zeros, a few kB compressed, against a 64 KiB
// slot) is refused without decoding past the slot, by zstd and by LZMA.
static void test_decompression_bombs_refused(void **) {
	std::vector<uint8_t> zeros(64u << 20, 0), packed;
	for (chunk::Codec c : {chunk::Codec::Zstd, chunk::Codec::Lzma}) {
		chunk::compress_block(c, 1, zeros.data(), zeros.size(), packed);
		assert_true(packed.size() < (1u << 20));
		std::vector<uint8_t> slot(64u << 10);
		try {
			chunk::decompress_block(c, packed.data(), packed.size(), slot.data(), slot.size(), "bomb");
			fail_msg("a %zu-byte block decoding to 64 MiB was accepted into 64 KiB", packed.size());
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
			print_message("# bomb of %zu bytes refused: %s\n", packed.size(), e.what());
		}
	}
}

// Declared sizes of the container (header length, device state length)
// are not allocated before their bytes are there and agree with how they
// are stored: a 100-byte file claiming a 64 MiB header, a footer claiming
// 256 MiB of device state stored in 0 bytes, cost what they hold.
static void test_declared_sizes_not_allocated_ahead(void **) {
	auto refused_small = [](const std::vector<uint8_t> &b, const char *what) {
		Collected c;
		g_largest_alloc = 0;
		try {
			read_all(b, c);
			fail_msg("accepted: %s", what);
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
			print_message("# %s: %s (largest allocation %zu bytes)\n", what, e.what(), g_largest_alloc.load());
		}
		if (g_largest_alloc > (4u << 20))
			fail_msg("%s: %zu bytes allocated at once", what, g_largest_alloc.load());
	};
	std::vector<uint8_t> head = {'C', 'L', 'T', 'O', 'V', 'L', 'v', '1', 1, 0, 0, 0, 0, 0, 0, 4}; // 64 MiB
	head.resize(100, '{');
	refused_small(head, "a 64 MiB header in 100 bytes");

	VectorSink out;
	{
		format::OverlayWriter w(out, sample_header(), chunk::Codec::Zstd, 3, 1 << 20);
		w.add_ref(0, 1, ChunkKind::Zero, 0);
		w.finish({});
	}
	Collected ok;
	read_all(out.bytes, ok);
	// footer: ... u32 codec, u64 length, u64 stored, (no stored bytes), u64
	// xxh64, u64 header xxh64, u64 footer offset, end magic
	size_t dh = out.bytes.size() - 32 - 20;
	for (uint32_t codec : {0u, 1u}) {
		auto b = out.bytes;
		b[dh] = static_cast<uint8_t>(codec);
		b[dh + 4 + 3] = 0x10; // 256 MiB
		refused_small(b, codec ? "256 MiB of zstd device state in 0 bytes" : "256 MiB of device state in 0 bytes");
	}
}

// --codec auto: the first segment decides; random data keeps zstd (LZMA
// gains nothing), and the overlay reads back either way.
static void test_codec_auto(void **) {
	for (bool text : {false, true}) {
		VectorSink out;
		format::OverlayWriter w(out, sample_header(), chunk::Codec::Zstd, 3, 1 << 20, 2);
		w.choose_codec_from_first_segment();
		for (uint32_t i = 0; i < 600; i++) {
			std::vector<uint8_t> p(4096);
			std::mt19937 rng(i);
			for (size_t k = 0; k < p.size(); k++)
				p[k] = text ? static_cast<uint8_t>("GET /index.html 200 OK user=alice\n"[(k + rng() % 3) % 34])
				            : static_cast<uint8_t>(rng());
			w.add_data(0, i, p.data());
		}
		w.finish({});
		print_message("# auto on %s data chose %s\n", text ? "text-like" : "random", chunk::codec_name(w.codec()));
		if (!text)
			assert_true(w.codec() == chunk::Codec::Zstd);
		Collected c;
		format::OverlayCounts n = read_all(out.bytes, c);
		assert_int_equal(n.records[static_cast<int>(ChunkKind::Data)], 600);
	}
}

static void test_chunk_table(void **) {
	engine::ChunkTable t;
	for (uint64_t i = 0; i < 100000; i++)
		t.insert(i * 0x9e3779b97f4a7c15ull, i);
	t.insert(0x9e3779b97f4a7c15ull, 999); // first insertion wins
	assert_int_equal(t.size(), 100000);
	for (uint64_t i = 0; i < 100000; i += 997)
		assert_int_equal(*t.find(i * 0x9e3779b97f4a7c15ull), i);
	assert_false(t.find(12345).has_value());
}

// Every dedup category on a synthetic base, and a lying index: a candidate
// whose bytes differ is never used.
static void test_dedup_categories(void **) {
	char tmpl[] = "/tmp/cloudlet-dedup-XXXXXX";
	std::string dir = mkdtemp(tmpl);
	const uint64_t pages = 64;
	qemu::MemoryImage mem;
	mem.info.total_pages = pages;
	mem.reset_pages(pages);
	for (uint64_t p = 0; p < pages; p++) {
		auto d = page(static_cast<uint32_t>(1000 + p), false);
		if (p % 9 == 8)
			mem.set_page(p, nullptr, 0);
		else
			mem.set_page(p, d.data(), 0);
	}
	qemu::MemoryImageProvider memp(mem);
	std::vector<uint8_t> disk(256 << 10);
	for (size_t i = 0; i < disk.size(); i++)
		disk[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
	// The memory index lies about page 7: it claims the hash of `planted`.
	auto planted = page(4242, false);
	std::vector<engine::Hash128> mh;
	for (uint64_t p = 0; p < pages; p++)
		mh.push_back(p == 7 ? engine::chunk_hash(planted.data())
		                    : mem.data(p) ? engine::chunk_hash(mem.data(p)) : engine::zero_chunk_hash());
	engine::write_index(dir + "/m.idx", engine::IndexKind::Memory, pages * 4096, mh);
	engine::write_index(dir + "/d.idx", engine::IndexKind::Disk, disk.size(), engine::hash_range(disk.data(), disk.size(), 1));
	engine::write_index(dir + "/d.idx512", engine::IndexKind::DiskSectors, disk.size(),
	                    engine::hash_sector_windows(disk.data(), disk.size(), 1));
	engine::IndexFile mi(dir + "/m.idx"), di(dir + "/d.idx"), ds(dir + "/d.idx512");
	engine::DedupBase base;
	base.memory = &memp;
	base.memory_index = &mi;
	base.disks.push_back({disk.data(), disk.size(), &di, &ds});
	engine::Deduper dd(base, dir);
	using K = ChunkKind;
	auto expect = [&](uint8_t space, uint64_t chunk, const uint8_t *data, bool unchanged, K kind, uint64_t ref) {
		engine::DedupDecision r = dd.classify(space, chunk, data);
		assert_int_equal(r.unchanged, unchanged);
		if (!unchanged) {
			assert_int_equal(static_cast<int>(r.kind), static_cast<int>(kind));
			assert_int_equal(r.ref, ref);
		}
	};
	std::vector<uint8_t> zero(4096, 0);
	expect(0, 0, mem.data(0), true, K::Data, 0);                    // same as base page 0
	expect(0, 8, zero.data(), true, K::Data, 0);                     // base page 8 is zero too
	expect(0, 1, zero.data(), false, K::Zero, 0);
	expect(0, 2, mem.data(5), false, K::BaseMemory, 5);
	expect(0, 3, disk.data() + 3 * 4096, false, K::BaseDisk, 3 * 4096);
	expect(0, 4, disk.data() + 1024, false, K::BaseDisk, 1024);     // only the 512-step index finds it
	auto fresh = page(77, false);
	expect(0, 5, fresh.data(), false, K::Data, 0);
	expect(0, 6, fresh.data(), false, K::Self, 5);                   // memory chunk 5
	expect(0, 9, planted.data(), false, K::Data, 0);                 // index lied about page 7
	expect(1, 0, disk.data(), true, K::Data, 0);
	expect(1, 1, fresh.data(), false, K::Self, 5);
	auto other = page(78, false);
	expect(1, 2, other.data(), false, K::Data, 0);
	expect(0, 10, other.data(), false, K::Self, chunk::pack_ref(1, 2));
	// A page that changed a little against the base page at its position is
	// stored as XOR against it; mostly zeros, so it compresses to little.
	std::vector<uint8_t> tweaked(mem.data(11), mem.data(11) + 4096);
	tweaked[100] ^= 0x55;
	tweaked[3000] ^= 0x01;
	engine::DedupDecision x = dd.classify(0, 11, tweaked.data());
	assert_int_equal(static_cast<int>(x.kind), static_cast<int>(K::DataXor));
	for (size_t i = 0; i < 4096; i++)
		assert_int_equal(x.payload[i] ^ mem.data(11)[i], tweaked[i]);
	// Self-references find it by content, not by its stored form.
	expect(0, 12, tweaked.data(), false, K::Self, 11);
	const auto &c = dd.counts();
	assert_int_equal(c.total(0), 12);
	assert_int_equal(c.total(1), 3);
	assert_int_equal(c.n[0][0], 2);
	assert_int_equal(c.n[0][static_cast<int>(K::BaseDisk)], 2);
	assert_int_equal(c.n[0][static_cast<int>(K::Self)], 3);
	assert_int_equal(c.n[0][static_cast<int>(K::DataXor)], 1);
	std::string rm = "rm -rf '" + dir + "'";
	assert_int_equal(system(rm.c_str()), 0);
}

int main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_codecs),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_references_checked_against_base),
	    cmocka_unit_test(test_writer_misuse_is_refused_by_reader),
	    cmocka_unit_test(test_damage),
	    cmocka_unit_test(test_version2_layout_enforced),
	    cmocka_unit_test(test_decompression_bombs_refused),
	    cmocka_unit_test(test_declared_sizes_not_allocated_ahead),
	    cmocka_unit_test(test_codec_auto),
	    cmocka_unit_test(test_chunk_table),
	    cmocka_unit_test(test_dedup_categories),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
