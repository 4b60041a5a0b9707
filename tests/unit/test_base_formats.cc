// Base-VM formats and the store, without libvirt: manifest (deterministic
// bytes, hostile input), chunk index files (round trip, hostile files),
// base packages (round trip into a store, every truncation and many
// flips refused with nothing left behind), and the catalog under
// concurrent writers in separate processes.
#include "byte_reader.h"
#include "engine/chunk_index.h"
#include "engine/sha256.h"
#include "format/base_package.h"
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
#include <random>
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
	store::Manifest m;
	m.virt_type = "qemu";
	m.machine = "pc-i440fx-7.2";
	m.cpu_model = "core2duo";
	m.memory_bytes = mem.size();
	for (auto [file, role] : {std::pair{"domain.xml", "domain-xml"}, std::pair{"memory.cltmem", "memory"},
	                          std::pair{"memory.idx", "memory-index"}, std::pair{"disk-vda.raw", "disk"}}) {
		store::Part p{file, role, std::string(role) == "disk" ? "vda" : "", 0, ""};
		p.sha256 = engine::sha256_file(dir + "/" + file, &p.size);
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
	assert_int_equal(back.parts.size(), 4);
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
	refused(replaced("\"format\": 1", "\"format\": 2"), CLOUDLET_E_UNSUPPORTED);
	refused(replaced("\"disk-vda.raw\"", "\"../../etc/passwd\""), CLOUDLET_E_CORRUPT);
	refused(replaced("\"disk-vda.raw\"", "\"manifest.json\""), CLOUDLET_E_CORRUPT);
	refused(replaced("\"disk-vda.raw\"", "\"memory.idx\""), CLOUDLET_E_CORRUPT); // twice
	refused(replaced("\"memory-index\"", "\"other\""), CLOUDLET_E_CORRUPT);
	refused(replaced(back.parts[0].sha256, "xyz"), CLOUDLET_E_CORRUPT);
	refused(replaced("\"libcloudlet-base\"", "\"something\""), CLOUDLET_E_CORRUPT);
	refused(a.substr(0, a.size() / 2), CLOUDLET_E_CORRUPT);
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
	assert_string_equal(sha.c_str(), engine::sha256_file(path).c_str());
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
	format::PackageHeader h{engine::sha256_hex(manifest.data(), manifest.size()), "pkgtest", manifest};
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
					e.id = engine::sha256_hex(e.name.data(), e.name.size());
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
		e.id = engine::sha256_hex("other", 5);
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
	    cmocka_unit_test(test_index_files),
	    cmocka_unit_test(test_package_round_trip_and_damage),
	    cmocka_unit_test(test_concurrent_catalog),
	};
	return cmocka_run_group_tests(tests, nullptr, cleanup);
}
