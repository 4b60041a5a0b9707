// Base-VM formats and the store, without libvirt: manifest (deterministic
// bytes, hostile input, older formats refused), part digests (content only:
// sparse = dense, every flipped byte and the size count; the definition
// pinned), the one-pass indexes of sparse disks and memory images, chunk
// index files (round trip, hostile files), base packages (round trip into a
// store, every truncation and many flips refused with nothing left behind),
// and the catalog under concurrent writers in separate processes.
#include "byte_reader.h"
#include "chunk/content_digest.h"
#include "chunk/sha256.h"
#include "engine/chunk_index.h"
#include "format/base_package.h"
#include "image_file.h"
#include "ops/base.h"
#include "ops/context.h"
#include "store/base_store.h"
#include "store/manifest.h"
#include "util/error.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet;

static std::string tmp_root() {
	static std::string root;
	if (root.empty()) {
		char t[] = "/tmp/cloudlet-unit-XXXXXX";
		assert_non_null(mkdtemp(t));
		root = t;
	}
	return root;
}

static void write_file(const std::string &path, const std::vector<uint8_t> &data) {
	FILE *f = fopen(path.c_str(), "wb");
	assert_non_null(f);
	if (!data.empty())
		assert_int_equal(fwrite(data.data(), 1, data.size(), f), data.size());
	assert_int_equal(fclose(f), 0);
}

static std::vector<uint8_t> read_file(const std::string &path) {
	std::vector<uint8_t> out;
	FILE *f = fopen(path.c_str(), "rb");
	assert_non_null(f);
	uint8_t buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		out.insert(out.end(), buf, buf + n);
	fclose(f);
	return out;
}

static size_t entries(const std::string &dir) {
	size_t n = 0;
	if (DIR *d = opendir(dir.c_str())) {
		while (struct dirent *e = readdir(d))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				n++;
		closedir(d);
	}
	return n;
}

// A small base folder with real files: memory-like data with zero runs,
// a "disk" with a hole, an XML.
static store::Manifest make_base_files(const std::string &dir) {
	mkdir(dir.c_str(), 0755);
	std::mt19937_64 rng(42);
	std::vector<uint8_t> mem(3 << 20, 0), disk(5 << 20, 0);
	for (size_t i = 0; i < mem.size() / 2; i++)
		mem[i] = static_cast<uint8_t>(rng());
	for (size_t i = (4 << 20); i < disk.size(); i++)
		disk[i] = static_cast<uint8_t>(rng());
	std::string xml = "<domain type='qemu'><name>cloudlet-base</name></domain>";
	write_file(dir + "/memory.cltmem", mem);
	write_file(dir + "/disk-vda.raw", disk);
	write_file(dir + "/domain.xml", std::vector<uint8_t>(xml.begin(), xml.end()));
	auto mh = engine::hash_range(mem.data(), mem.size(), 2);
	engine::write_index(dir + "/memory.idx", engine::IndexKind::Memory, mem.size(), mh);
	Progress progress;
	engine::index_disk_file(dir + "/disk-vda.raw", dir + "/disk-vda.idx", dir + "/disk-vda.idx512",
	                        chunk::scan_step(2, progress, "index", 0, 0));
	store::Manifest m;
	m.virt_type = "qemu";
	m.machine = "pc-i440fx-7.2";
	m.cpu_model = "core2duo";
	m.memory_bytes = mem.size();
	for (auto [file, role] : {std::pair{"domain.xml", "domain-xml"}, std::pair{"memory.cltmem", "memory"},
	                          std::pair{"memory.idx", "memory-index"}, std::pair{"disk-vda.raw", "disk"},
	                          std::pair{"disk-vda.idx", "disk-index"}, std::pair{"disk-vda.idx512", "disk-sector-index"}}) {
		store::Part p{file, role, std::string(role).starts_with("disk") ? "vda" : "", 0, ""};
		p.digest = chunk::digest_file(dir + "/" + file, 2, &p.size);
		m.parts.push_back(p);
	}
	std::string text = m.to_json();
	write_file(dir + "/manifest.json", std::vector<uint8_t>(text.begin(), text.end()));
	return m;
}

static void test_manifest(void **) {
	std::string dir = tmp_root() + "/manifest";
	store::Manifest m = make_base_files(dir);
	std::string a = m.to_json();
	store::Manifest back = store::Manifest::parse(a, "m");
	assert_string_equal(back.to_json().c_str(), a.c_str()); // same manifest, same bytes
	assert_int_equal(back.parts.size(), 6);
	assert_string_equal(back.find("disk")->target.c_str(), "vda");

	auto refused = [&](std::string text, cloudlet_status want) {
		try {
			store::Manifest::parse(text, "m");
			fail_msg("accepted: %s", text.c_str());
		} catch (const Error &e) {
			assert_int_equal(e.status(), want);
		}
	};
	auto replaced = [&](const std::string &from, const std::string &to) {
		std::string t = a;
		size_t p = t.find(from);
		assert_true(p != std::string::npos);
		return t.replace(p, from.size(), to);
	};
	refused("", CLOUDLET_E_CORRUPT);
	refused("[]", CLOUDLET_E_CORRUPT);
	refused(replaced("\"format\": 2", "\"format\": 3"), CLOUDLET_E_UNSUPPORTED);
	refused(replaced("\"cloudlet-sha256-tree\"", "\"sha256\""), CLOUDLET_E_UNSUPPORTED);
	// A manifest of the older format (plain SHA-256 per part) is refused
	// with a message that says what to do.
	try {
		store::Manifest::parse(replaced("\"format\": 2", "\"format\": 1"), "old manifest");
		fail_msg("a format 1 manifest was accepted");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_UNSUPPORTED);
		assert_non_null(strstr(e.what(), "older libcloudlet"));
		assert_non_null(strstr(e.what(), "must be re-created"));
	}
	refused(replaced("\"disk-vda.raw\"", "\"../../etc/passwd\""), CLOUDLET_E_CORRUPT);
	refused(replaced("\"disk-vda.raw\"", "\"manifest.json\""), CLOUDLET_E_CORRUPT);
	refused(replaced("\"disk-vda.raw\"", "\"memory.idx\""), CLOUDLET_E_CORRUPT); // twice
	refused(replaced("\"memory-index\"", "\"other\""), CLOUDLET_E_CORRUPT);
	refused(replaced(back.parts[0].digest, "xyz"), CLOUDLET_E_CORRUPT);
	refused(replaced("\"libcloudlet-base\"", "\"something\""), CLOUDLET_E_CORRUPT);
	refused(a.substr(0, a.size() / 2), CLOUDLET_E_CORRUPT);
}

// A file of `size` bytes holding `pieces` (offset, bytes) and nothing else:
// sparse (only the pieces written) or dense (every byte written, zeros too).
using Pieces = std::vector<std::pair<uint64_t, std::vector<uint8_t>>>;
static void make_file(const std::string &path, uint64_t size, const Pieces &pieces, bool dense) {
	int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	if (dense) {
		std::vector<uint8_t> all(size, 0);
		for (const auto &[off, b] : pieces)
			memcpy(all.data() + off, b.data(), b.size());
		assert_int_equal(pwrite(fd, all.data(), all.size(), 0), static_cast<ssize_t>(all.size()));
	} else {
		assert_int_equal(ftruncate(fd, static_cast<off_t>(size)), 0);
		for (const auto &[off, b] : pieces)
			assert_int_equal(pwrite(fd, b.data(), b.size(), static_cast<off_t>(off)), static_cast<ssize_t>(b.size()));
	}
	assert_int_equal(close(fd), 0);
}

static std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
	std::mt19937_64 rng(seed);
	std::vector<uint8_t> b(n);
	for (auto &c : b)
		c = static_cast<uint8_t>(rng() | 1); // never zero
	return b;
}

static uint64_t allocated(const std::string &path) {
	struct stat st;
	assert_int_equal(stat(path.c_str(), &st), 0);
	return static_cast<uint64_t>(st.st_blocks) * 512;
}

static void put_le64(std::vector<uint8_t> &b, uint64_t v) {
	for (int i = 0; i < 8; i++)
		b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

static std::vector<uint8_t> raw_sha(const void *p, size_t n) {
	chunk::Sha256 h;
	h.update(p, n);
	std::vector<uint8_t> out(32);
	h.digest(out.data());
	return out;
}

// The definition of docs/formats/base.md, computed here independently of
// engine/content_digest.cc.
static std::string reference_digest(const std::vector<uint8_t> &content) {
	const size_t leaf = 1 << 20;
	std::vector<uint8_t> input(std::begin("cloudlet-sha256-tree"), std::end("cloudlet-sha256-tree")); // with NUL
	put_le64(input, leaf);
	put_le64(input, content.size());
	std::vector<uint8_t> zeros(leaf, 0);
	std::vector<uint8_t> zero_leaf = raw_sha(zeros.data(), leaf);
	for (size_t off = 0; off < content.size(); off += leaf) {
		size_t n = std::min(leaf, content.size() - off);
		bool zero = std::all_of(content.begin() + static_cast<long>(off), content.begin() + static_cast<long>(off + n),
		                        [](uint8_t c) { return c == 0; });
		std::vector<uint8_t> l = zero ? zero_leaf : raw_sha(content.data() + off, n);
		input.insert(input.end(), l.begin(), l.end());
	}
	return chunk::to_hex(raw_sha(input.data(), input.size()).data(), 32);
}

static void test_part_digest(void **) {
	std::string dir = tmp_root() + "/digest";
	mkdir(dir.c_str(), 0755);
	std::string sparse = dir + "/sparse", dense = dir + "/dense", other = dir + "/other";
	// 5 MiB + 100 bytes: a data leaf, a leaf that is all hole, data beside a
	// hole inside one leaf (at an odd offset), an all-hole leaf, a short last
	// leaf with data at its very end.
	const uint64_t size = (5u << 20) + 100;
	Pieces pieces = {{0, random_bytes(1 << 20, 1)},
	                 {(2u << 20) + 12345, random_bytes(777, 2)},
	                 {(2u << 20) + (512u << 10), random_bytes(64 << 10, 3)},
	                 {size - 10, random_bytes(10, 4)}};
	make_file(sparse, size, pieces, false);
	make_file(dense, size, pieces, true);
	print_message("# sparse file: %llu of %llu bytes allocated\n", (unsigned long long)allocated(sparse),
	              (unsigned long long)size);
	std::vector<uint8_t> content = read_file(dense);
	std::string want = reference_digest(content);
	// Content alone: sparse = dense, any thread count, the streaming builder.
	for (unsigned threads : {1u, 2u, 3u}) {
		uint64_t got_size = 0;
		assert_string_equal(chunk::digest_file(sparse, threads, &got_size).c_str(), want.c_str());
		assert_int_equal(got_size, size);
		assert_string_equal(chunk::digest_file(dense, threads).c_str(), want.c_str());
	}
	{
		chunk::DigestBuilder b; // bytes in odd pieces
		for (size_t off = 0; off < content.size();) {
			size_t n = std::min<size_t>(content.size() - off, 65537);
			b.update(content.data() + off, n);
			off += n;
		}
		assert_string_equal(b.finish().c_str(), want.c_str());
		chunk::DigestBuilder z; // holes as zeros(), data as update()
		uint64_t at = 0;
		for (const auto &[off, bytes] : pieces) {
			z.zeros(off - at);
			z.update(bytes.data(), bytes.size());
			at = off + bytes.size();
		}
		z.zeros(size - at);
		assert_string_equal(z.finish().c_str(), want.c_str());
	}
	{
		// Long zero runs (kept as counts) around a data leaf, against the
		// leaves spelled out: 10 GiB of zeros, a leaf with one byte, zeros.
		std::vector<uint8_t> leaf(chunk::kLeafSize, 0);
		leaf[5] = 1;
		std::vector<chunk::Leaf> leaves(10240, chunk::zero_leaf());
		leaves.push_back(chunk::leaf_hash(leaf.data(), leaf.size()));
		leaves.insert(leaves.end(), 3, chunk::zero_leaf());
		uint64_t total = (10241ull + 3) << 20;
		chunk::DigestBuilder r;
		r.zeros((10240ull << 20) + 5);
		r.update(leaf.data() + 5, 1);
		r.zeros(total - r.size());
		assert_string_equal(r.finish().c_str(), chunk::root_digest(total, leaves).c_str());
	}
	// One flipped byte anywhere changes it: in data, in a hole, in a data
	// block right next to a hole, in the short last leaf.
	for (uint64_t off : {uint64_t(0), uint64_t((1u << 20) - 1), uint64_t(1u << 20), uint64_t((2u << 20) + 12344),
	                     uint64_t((2u << 20) + 12345), uint64_t((2u << 20) + 12345 + 777),
	                     uint64_t((2u << 20) + (512u << 10) - 1), uint64_t(4u << 20), size - 11, size - 1}) {
		make_file(other, size, pieces, false);
		int fd = open(other.c_str(), O_RDWR);
		uint8_t c = 0;
		assert_int_equal(pread(fd, &c, 1, static_cast<off_t>(off)), 1);
		c ^= 0x20;
		assert_int_equal(pwrite(fd, &c, 1, static_cast<off_t>(off)), 1);
		close(fd);
		std::string d = chunk::digest_file(other, 2);
		if (d == want)
			fail_msg("a flipped byte at %llu left the digest unchanged", (unsigned long long)off);
		assert_string_equal(d.c_str(), reference_digest(read_file(other)).c_str());
	}
	// The size is part of it: appending zeros changes it, within the last
	// leaf or as a new one; an empty file and all-zero files differ.
	for (uint64_t extra : {uint64_t(1), uint64_t(4096), uint64_t(1u << 20)}) {
		make_file(other, size + extra, pieces, false);
		assert_string_not_equal(chunk::digest_file(other, 2).c_str(), want.c_str());
	}
	std::set<std::string> zeros;
	for (uint64_t n : {uint64_t(0), uint64_t(1), uint64_t(4096), uint64_t(1u << 20), uint64_t(2u << 20)}) {
		make_file(other, n, {}, false);
		std::string d = chunk::digest_file(other, 2);
		assert_string_equal(d.c_str(), reference_digest(std::vector<uint8_t>(n, 0)).c_str());
		zeros.insert(d);
	}
	assert_int_equal(zeros.size(), 5);
	// Pinned by the format (docs/formats/base.md; also computed with Python's
	// hashlib): the digest of "abc", of an empty file, and Z.
	make_file(other, 3, {{0, {'a', 'b', 'c'}}}, true);
	assert_string_equal(chunk::digest_file(other, 1).c_str(),
	                    "64147b7a5292262dbdf19851c5b5aa90bdfad795de4abd9b13ce246be9b059c0");
	assert_string_equal(reference_digest({'a', 'b', 'c'}).c_str(),
	                    "64147b7a5292262dbdf19851c5b5aa90bdfad795de4abd9b13ce246be9b059c0");
	make_file(other, 0, {}, true);
	assert_string_equal(chunk::digest_file(other, 1).c_str(),
	                    "ecd09a6670ff0d5f84bb6f28f7afe6bb6f9bbc799d66f84fbaab06fc28e58bb2");
	assert_string_equal(chunk::to_hex(chunk::zero_leaf().b, 32).c_str(),
	                    "30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58");
	assert_true(chunk::zero_leaf() == chunk::leaf_hash(std::vector<uint8_t>(100, 0).data(), 100));
}

// The one pass over a sparse disk gives the indexes the dense content
// gives; holes' entries are the zero-chunk hash.
static void test_one_pass_disk_index(void **) {
	std::string dir = tmp_root() + "/onepass";
	mkdir(dir.c_str(), 0755);
	std::string sparse = dir + "/disk.raw", dense = dir + "/dense.raw";
	const uint64_t size = (9u << 20) + 1536; // not a multiple of 4096: a padded last chunk
	Pieces pieces = {{4096, random_bytes(8192, 5)},
	                 {(1u << 20) - 1024, random_bytes(3000, 6)}, // across a leaf boundary
	                 {(3u << 20) + 512, random_bytes(100 << 10, 7)},
	                 {(8u << 20) + 7, random_bytes(9, 8)},
	                 {size - 700, random_bytes(700, 9)}};
	make_file(sparse, size, pieces, false);
	make_file(dense, size, pieces, true);
	std::vector<uint8_t> content = read_file(dense);
	auto h4 = engine::hash_range(content.data(), content.size(), 1);
	auto h512 = engine::hash_sector_windows(content.data(), content.size(), 1);
	std::string want = chunk::digest_file(dense, 1);
	std::vector<uint8_t> first4, first512;
	for (unsigned threads : {1u, 2u}) {
		chunk::ScanOptions o;
		o.threads = threads;
		Progress progress;
		o.progress = &progress;
		std::string d = engine::index_disk_file(sparse, dir + "/d.idx", dir + "/d.idx512", o);
		assert_string_equal(d.c_str(), want.c_str());
		engine::IndexFile i4(dir + "/d.idx"), i512(dir + "/d.idx512");
		assert_int_equal(i4.count(), h4.size());
		assert_int_equal(i512.count(), h512.size());
		assert_int_equal(i4.source_bytes(), size);
		for (uint64_t k = 0; k < h4.size(); k++)
			assert_true(i4.at(k) == h4[k]);
		for (uint64_t k = 0; k < h512.size(); k++)
			assert_true(i512.at(k) == h512[k]);
		// Entries of holes are the zero-chunk hash: 2 MiB is in a hole.
		assert_true(i4.at((2u << 20) / 4096) == engine::zero_chunk_hash());
		assert_true(i512.at((2u << 20) / 512 + 3) == engine::zero_chunk_hash());
		if (threads == 1) {
			first4 = read_file(dir + "/d.idx");
			first512 = read_file(dir + "/d.idx512");
		} else { // threads change no byte
			assert_true(read_file(dir + "/d.idx") == first4);
			assert_true(read_file(dir + "/d.idx512") == first512);
		}
	}
}

// The one pass over a memory image gives the index page() gives, also
// for a page whose slot holds stale data (a page sent, then zeroed).
static void test_one_pass_memory_index(void **) {
	std::string path = tmp_root() + "/memory.cltmem";
	qemu::StreamInfo si;
	si.version = 3;
	const std::string cfg = std::string("\x07\0\0\0\x0d", 5) + "pc-i440fx-7.2";
	si.config_section.assign(cfg.begin(), cfg.end());
	si.blocks.push_back({"pc.ram", 900 * 4096, 0});
	si.blocks.push_back({"pc.bios", 4 * 4096, 900});
	si.total_pages = 904;
	si.device_state = {1, 2, 3};
	{
		qemu::ImageFileWriter w(path);
		w.on_ram_blocks(si);
		std::vector<uint8_t> page(4096);
		for (uint64_t p = 0; p < si.total_pages; p++) {
			if (p % 5 == 0 || (p > 300 && p < 600))
				continue; // zero pages
			memset(page.data(), static_cast<int>(p), page.size());
			page[p % 4096] = 0xa5;
			w.on_page(p < 900 ? 0 : 1, p, page.data(), 0, 0);
		}
		w.on_page(0, 7, nullptr, 0, 1); // page 7 became zero; its slot keeps old data
		w.finish(si);
	}
	qemu::ImageFile img(path);
	auto want = engine::hash_chunks(si.total_pages, [&](uint64_t p) { return img.page(p); }, 1);
	assert_true(want[7] == engine::zero_chunk_hash());
	std::string idx = tmp_root() + "/memory.idx";
	chunk::ScanOptions o;
	o.threads = 2;
	std::string d = engine::index_memory_image(path, idx, o);
	assert_string_equal(d.c_str(), chunk::digest_file(path, 1).c_str());
	engine::IndexFile f(idx);
	assert_int_equal(f.count(), si.total_pages);
	for (uint64_t p = 0; p < si.total_pages; p++)
		assert_true(f.at(p) == want[p]);
}

static void test_index_files(void **) {
	std::string dir = tmp_root();
	std::vector<uint8_t> data(1 << 20);
	for (size_t i = 0; i < data.size(); i++)
		data[i] = static_cast<uint8_t>(i * 7 + i / 4096);
	memset(data.data() + 8192, 0, 4096);
	auto h1 = engine::hash_range(data.data(), data.size() - 100, 1);
	auto h2 = engine::hash_range(data.data(), data.size() - 100, 2);
	assert_int_equal(h1.size(), 256);
	for (size_t i = 0; i < h1.size(); i++)
		assert_true(h1[i] == h2[i]); // threads change nothing
	assert_true(h1[2] == engine::zero_chunk_hash());
	assert_true(h1[1] != h1[3]);
	std::string path = dir + "/x.idx";
	std::string sha = engine::write_index(path, engine::IndexKind::Disk, data.size() - 100, h1);
	assert_string_equal(sha.c_str(), chunk::sha256_file(path).c_str());
	{
		engine::IndexFile f(path);
		assert_int_equal(f.count(), 256);
		assert_true(f.kind() == engine::IndexKind::Disk);
		assert_true(f.at(255) == h1[255]);
		try {
			f.at(256);
			fail_msg("read past the end");
		} catch (const Error &) {
		}
	}
	// The 512-byte-step index: aligned windows are the 4 KiB chunks; the
	// others find data that starts mid-chunk.
	uint64_t n = data.size() - 100;
	auto s = engine::hash_sector_windows(data.data(), n, 2);
	assert_int_equal(s.size(), (n - 4096) / 512 + 1);
	for (size_t k = 0; k * 8 < s.size() && k + 1 < h1.size(); k++)
		assert_true(s[k * 8] == h1[k]);
	assert_true(s[3] == engine::chunk_hash(data.data() + 3 * 512));
	std::string spath = dir + "/x.idx512";
	engine::write_index(spath, engine::IndexKind::DiskSectors, n, s);
	{
		engine::IndexFile f(spath);
		assert_true(f.kind() == engine::IndexKind::DiskSectors);
		assert_int_equal(f.step(), 512);
		assert_true(f.at(s.size() - 1) == s.back());
	}
	try {
		engine::write_index(spath, engine::IndexKind::DiskSectors, n, h1); // wrong count
		fail_msg("an index with the wrong entry count was written");
	} catch (const Error &) {
	}
	auto good = read_file(path);
	auto refused = [&](std::vector<uint8_t> bytes) {
		write_file(path, bytes);
		try {
			engine::IndexFile f(path);
			fail_msg("a damaged index was accepted");
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
		}
	};
	for (size_t cut : {size_t(0), size_t(10), size_t(63), size_t(64), good.size() - 1})
		refused(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(cut)));
	for (size_t off : {0, 8, 12, 16, 20, 24, 35}) {
		auto b = good;
		b[off] ^= 0x40;
		refused(b);
	}
	auto big = good;
	big[31] = 0x7f; // an absurd chunk count
	refused(big);
}

static std::string package_of(const std::string &dir, const store::Manifest &m, const std::string &out) {
	std::string manifest(reinterpret_cast<const char *>(read_file(dir + "/manifest.json").data()),
	                     read_file(dir + "/manifest.json").size());
	format::PackageHeader h{chunk::sha256_hex(manifest.data(), manifest.size()), "pkgtest", manifest};
	int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	Progress p;
	format::write_base_package(fd, out, h, m, dir, p);
	close(fd);
	return h.id;
}

// Imports like ops::base_import: read into a work folder, remove it on failure.
static cloudlet_status import_into(const std::string &pkg, store::BaseStore &st, std::string *id) {
	std::string work = st.make_work_dir("import-");
	int fd = open(pkg.c_str(), O_RDONLY);
	cloudlet_status s = CLOUDLET_OK;
	try {
		qemu::FdSource src(fd, pkg);
		qemu::Reader r(src, pkg);
		Progress p;
		format::PackageHeader h = format::read_base_package(r, work, p);
		if (id)
			*id = h.id;
	} catch (const Error &e) {
		s = e.status();
	}
	close(fd);
	store::remove_tree(work);
	return s;
}

static void test_package_round_trip_and_damage(void **) {
	std::string dir = tmp_root() + "/pkgsrc";
	store::Manifest m = make_base_files(dir);
	std::string pkg = tmp_root() + "/base.pkg";
	std::string id = package_of(dir, m, pkg);
	auto good = read_file(pkg);
	// Zero blocks carry no data: the 4 MiB hole and the zero half of memory.
	assert_true(good.size() < m.total_bytes() - (4u << 20));
	store::BaseStore st(tmp_root() + "/store");
	std::string got;
	assert_int_equal(import_into(pkg, st, &got), CLOUDLET_OK);
	assert_string_equal(got.c_str(), id.c_str());

	std::string bad = tmp_root() + "/bad.pkg";
	std::mt19937 rng(7);
	int cases = 0;
	// Truncations at every layer, then flips anywhere (header, blocks, trailer).
	std::vector<size_t> cuts = {0, 7, 8, 12, 16, 100, good.size() / 3, good.size() / 2, good.size() - 73,
	                            good.size() - 64, good.size() - 1};
	for (size_t cut : cuts) {
		write_file(bad, std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(cut)));
		cloudlet_status s = import_into(bad, st, nullptr);
		assert_true(s == CLOUDLET_E_CORRUPT || s == CLOUDLET_E_UNSUPPORTED);
		cases++;
	}
	for (int i = 0; i < 60; i++) {
		auto b = good;
		size_t off = i < 20 ? rng() % 200 : rng() % b.size();
		b[off] ^= static_cast<uint8_t>(1 + rng() % 255);
		write_file(bad, b);
		cloudlet_status s = import_into(bad, st, nullptr);
		if (s != CLOUDLET_E_CORRUPT && s != CLOUDLET_E_UNSUPPORTED)
			fail_msg("a flip at offset %zu gave status %d", off, s);
		cases++;
	}
	auto trailing = good;
	trailing.push_back('x');
	write_file(bad, trailing);
	assert_int_equal(import_into(bad, st, nullptr), CLOUDLET_E_CORRUPT);
	assert_int_equal(entries(st.root() + "/tmp"), 0); // nothing left behind
	print_message("# %d damaged packages refused\n", cases + 1);

	// Export refuses a part that changed since its manifest.
	auto disk = read_file(dir + "/disk-vda.raw");
	disk[4 << 20] ^= 1;
	write_file(dir + "/disk-vda.raw", disk);
	try {
		package_of(dir, m, bad);
		fail_msg("exported a changed part");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
	}
}

// Imports like ops::base_import and says how far the reader got and
// whether the work folder still held nothing when it was refused.
struct ImportResult {
	cloudlet_status status = CLOUDLET_OK;
	std::string message;
	uint64_t consumed = 0; // bytes the reader consumed
	size_t files = 0;      // files in the work folder when it stopped
	double seconds = 0;
};

static ImportResult import_counting(const std::string &pkg, store::BaseStore &st) {
	ImportResult res;
	std::string work = st.make_work_dir("import-");
	int fd = open(pkg.c_str(), O_RDONLY);
	qemu::FdSource src(fd, pkg);
	qemu::Reader r(src, pkg);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	try {
		Progress p;
		format::read_base_package(r, work, p);
	} catch (const Error &e) {
		res.status = e.status();
		res.message = e.what();
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	res.seconds = double(t1.tv_sec - t0.tv_sec) + double(t1.tv_nsec - t0.tv_nsec) / 1e9;
	res.consumed = r.offset();
	res.files = entries(work);
	close(fd);
	store::remove_tree(work);
	return res;
}

static void refused_as(const ImportResult &r, cloudlet_status status, std::initializer_list<const char *> words) {
	print_message("# %s (after %llu bytes, %.3f s)\n", r.message.c_str(), (unsigned long long)r.consumed, r.seconds);
	if (r.status != status)
		fail_msg("status %d, expected %d: %s", r.status, status, r.message.c_str());
	for (const char *w : words)
		if (r.message.find(w) == std::string::npos)
			fail_msg("'%s' does not say '%s'", r.message.c_str(), w);
	assert_int_equal(r.files, 0); // refused before any part was created
	assert_true(r.seconds < 0.5);
}

// Part sizes a package declares are bounded before any work grows with
// them (docs/formats/base-package.md, "Part sizes").
static void test_package_declared_sizes(void **) {
	std::string dir = tmp_root() + "/pkgsizes";
	store::Manifest honest = make_base_files(dir);
	store::BaseStore st(tmp_root() + "/store-sizes");
	std::string pkg = tmp_root() + "/sizes.pkg";

	// 1. A consistent package (the project's writer, true digests) whose
	// memory image is a 10 GiB hole: 10 KiB of zero blocks. Without the
	// bound it imports, after digesting 10 GiB.
	{
		std::string big = tmp_root() + "/pkgsizes-big";
		store::Manifest m = make_base_files(big);
		std::string mem = big + "/memory.cltmem";
		assert_int_equal(truncate(mem.c_str(), 10ll << 30), 0);
		for (auto &p : m.parts)
			if (p.role == "memory")
				p.digest = chunk::digest_file(mem, 2, &p.size);
		std::string text = m.to_json();
		write_file(big + "/manifest.json", std::vector<uint8_t>(text.begin(), text.end()));
		package_of(big, m, pkg);
		struct stat sb {};
		assert_int_equal(stat(pkg.c_str(), &sb), 0);
		assert_true(sb.st_size < (9 << 20)); // the hole costs a byte per MiB
		uint64_t bound = format::PartBounds::memory_image(m.memory_bytes);
		ImportResult r = import_counting(pkg, st);
		refused_as(r, CLOUDLET_E_CORRUPT, {"memory.cltmem", std::to_string(bound).c_str(), "10737418240"});
		// only the header was read: no block of any part
		assert_true(r.consumed < 16 + text.size() * 2 + 200);
		// The operation (what `cloudlet base import` runs) refuses it fast
		// and leaves nothing in the store.
		ops::Settings set;
		set.store_dir = tmp_root() + "/store-import";
		ops::Context ctx(set, Logger());
		Progress progress;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		try {
			ops::base_import(ctx, pkg, "", progress);
			fail_msg("base import took a package declaring a 10 GiB memory image for 3 MiB of RAM");
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
			assert_non_null(strstr(e.what(), "memory.cltmem"));
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		assert_true(double(t1.tv_sec - t0.tv_sec) + double(t1.tv_nsec - t0.tv_nsec) / 1e9 < 0.5);
		store::BaseStore imported(set.store_dir);
		assert_int_equal(imported.list().size(), 0);
		assert_int_equal(entries(set.store_dir + "/tmp"), 0);
		assert_int_equal(entries(set.store_dir + "/bases"), 0);
		store::remove_tree(big);
	}

	// 2. Hostile manifests in the header (the parts after it do not
	// matter: nothing past the header may be read).
	auto with = [&](const std::function<void(store::Manifest &)> &change) {
		store::Manifest m = honest;
		change(m);
		std::string text = m.to_json();
		format::PackageHeader h{chunk::sha256_hex(text.data(), text.size()), "sizes", text};
		int fd = open(pkg.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
		Progress p;
		format::write_base_package(fd, pkg, h, honest, dir, p);
		close(fd);
		return import_counting(pkg, st);
	};
	auto part = [](store::Manifest &m, const char *role) -> store::Part & {
		for (auto &p : m.parts)
			if (p.role == role)
				return p;
		fail_msg("no %s part", role);
		abort();
	};
	// The honest sizes import (the bounds refuse nothing real; disk indexes
	// are exactly what the index format needs for the disk).
	assert_int_equal(with([](store::Manifest &) {}).status, CLOUDLET_OK);
	refused_as(with([&](store::Manifest &m) { part(m, "disk").size = 1ull << 50; }), CLOUDLET_E_CORRUPT,
	           {"disk-vda.raw", std::to_string(format::PartBounds::kMaxDiskBytes).c_str()});
	refused_as(with([&](store::Manifest &m) { part(m, "memory").size = 1ull << 62; }), CLOUDLET_E_CORRUPT,
	           {"memory.cltmem"});
	refused_as(with([&](store::Manifest &m) {
		           part(m, "memory-index").size = format::PartBounds::index_file(1, 1ull << 32);
	           }),
	           CLOUDLET_E_CORRUPT, {"memory.idx"});
	refused_as(with([&](store::Manifest &m) { m.memory_bytes = 1ull << 41; }), CLOUDLET_E_CORRUPT, {"memory_bytes"});
	refused_as(with([&](store::Manifest &m) { m.memory_bytes = 0; }), CLOUDLET_E_CORRUPT, {"memory_bytes"});
	refused_as(with([&](store::Manifest &m) { part(m, "disk-index").size += 16; }), CLOUDLET_E_CORRUPT,
	           {"disk-vda.idx", "disk-vda.raw"});
	refused_as(with([&](store::Manifest &m) { part(m, "disk-sector-index").size = 1ull << 40; }), CLOUDLET_E_CORRUPT,
	           {"disk-vda.idx512"});
	refused_as(with([&](store::Manifest &m) { part(m, "disk-index").target = "vdb"; }), CLOUDLET_E_CORRUPT,
	           {"disk-vda.idx", "vdb"});
	refused_as(with([&](store::Manifest &m) { part(m, "domain-xml").size = 1ull << 40; }), CLOUDLET_E_CORRUPT,
	           {"domain.xml"});
	refused_as(with([&](store::Manifest &m) { m.parts.push_back({"kernel", "kernel", "", 1ull << 40, honest.parts[0].digest}); }),
	           CLOUDLET_E_CORRUPT, {"kernel", std::to_string(format::PartBounds::kMaxBootFile).c_str()});
	refused_as(with([&](store::Manifest &m) { m.parts.push_back({"blob", "blob", "", 1ull << 40, honest.parts[0].digest}); }),
	           CLOUDLET_E_UNSUPPORTED, {"blob"});
	refused_as(with([&](store::Manifest &m) {
		           store::Part d = part(m, "disk");
		           d.file = "disk-vda2.raw";
		           m.parts.push_back(d);
	           }),
	           CLOUDLET_E_CORRUPT, {"vda", "twice"});
	// The header-only read (base inspect) refuses them too.
	{
		store::Manifest m = honest;
		part(m, "disk").size = 1ull << 50;
		std::string text = m.to_json();
		format::PackageHeader h{chunk::sha256_hex(text.data(), text.size()), "sizes", text};
		int fd = open(pkg.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
		Progress p;
		format::write_base_package(fd, pkg, h, honest, dir, p);
		close(fd);
		fd = open(pkg.c_str(), O_RDONLY);
		qemu::FdSource src(fd, pkg);
		qemu::Reader r(src, pkg);
		try {
			format::read_base_package_header(r);
			fail_msg("the header of a package with a 1 PiB disk was accepted");
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
		}
		close(fd);
	}
	assert_int_equal(entries(st.root() + "/tmp"), 0);
	assert_int_equal(st.list().size(), 0);
}

// Several processes add bases to one store at once: the catalog ends with
// every one of them and stays valid JSON throughout.
static void test_concurrent_catalog(void **) {
	std::string root = tmp_root() + "/concurrent";
	store::BaseStore st(root);
	const int procs = 4, each = 10;
	std::vector<pid_t> kids;
	for (int p = 0; p < procs; p++) {
		pid_t pid = fork();
		if (pid == 0) {
			try {
				store::BaseStore mine(root);
				for (int i = 0; i < each; i++) {
					std::string w = mine.make_work_dir("create-");
					store::CatalogEntry e;
					e.name = "b-" + std::to_string(p) + "-" + std::to_string(i);
					e.id = chunk::sha256_hex(e.name.data(), e.name.size());
					mine.add(e, w);
					mine.list(); // readers never see a torn catalog
				}
			} catch (...) {
				_exit(1);
			}
			_exit(0);
		}
		kids.push_back(pid);
	}
	for (pid_t k : kids) {
		int status = 0;
		waitpid(k, &status, 0);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	assert_int_equal(st.list().size(), procs * each);
	assert_int_equal(entries(root + "/bases"), procs * each);
	// Names are unique; IDs too.
	try {
		std::string w = st.make_work_dir("create-");
		store::CatalogEntry e;
		e.name = "b-0-0";
		e.id = chunk::sha256_hex("other", 5);
		st.add(e, w);
		fail_msg("a duplicate name was accepted");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_EXISTS);
	}
	st.remove(st.find("b-1-1").id);
	assert_int_equal(st.list().size(), procs * each - 1);
}

static int cleanup(void **) {
	std::string cmd = "rm -rf '" + tmp_root() + "'";
	return system(cmd.c_str()) == 0 ? 0 : 0;
}

int main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_manifest),
	    cmocka_unit_test(test_part_digest),
	    cmocka_unit_test(test_one_pass_disk_index),
	    cmocka_unit_test(test_one_pass_memory_index),
	    cmocka_unit_test(test_index_files),
	    cmocka_unit_test(test_package_round_trip_and_damage),
	    cmocka_unit_test(test_package_declared_sizes),
	    cmocka_unit_test(test_concurrent_catalog),
	};
	return cmocka_run_group_tests(tests, nullptr, cleanup);
}
