// The qcow2 layer writer (docs/formats/qcow2-layer.md) against stock QEMU:
// `qemu-img check` finds no errors or leaks, `qemu-img convert` reads back
// exactly the backing file with our chunks and zeros applied, `qemu-img info`
// sees the backing file and format, and `qemu-io` can keep writing to the
// image (in place, into zeroed chunks, into new L2 tables). Misuse throws
// CLOUDLET_E_INVALID_ARG and an unfinished writer leaves no file.
#include "host/process.h"
#include "qcow2_layer.h"
#include "util/error.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <json-c/json.h>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet;
using qemu::Qcow2LayerWriter;

namespace {

constexpr uint64_t kChunk = 4096;
constexpr uint64_t kMiB = 1 << 20;

// A fresh directory under /tmp, removed with everything in it.
struct TempDir {
	TempDir() {
		char tmpl[] = "/tmp/cloudlet-qcow2-XXXXXX";
		assert_non_null(mkdtemp(tmpl));
		path = tmpl;
	}
	~TempDir() { std::filesystem::remove_all(path); }
	std::string operator/(const std::string &name) const { return path + "/" + name; }
	std::string path;
};

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
	std::vector<uint8_t> v(n);
	std::mt19937_64 rng(seed);
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint64_t x = rng();
		memcpy(v.data() + i, &x, 8);
	}
	for (size_t i = n - n % 8; i < n; i++)
		v[i] = static_cast<uint8_t>(rng());
	return v;
}

void write_file(const std::string &path, const std::vector<uint8_t> &data) {
	std::ofstream f(path, std::ios::binary);
	f.write(reinterpret_cast<const char *>(data.data()), static_cast<std::streamsize>(data.size()));
	assert_true(f.good());
}

std::vector<uint8_t> read_file(const std::string &path) {
	std::ifstream f(path, std::ios::binary);
	assert_true(f.good());
	return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

bool exists(const std::string &path) {
	struct stat st;
	return stat(path.c_str(), &st) == 0;
}

// cmocka's failures longjmp, so they are raised outside the catch blocks.
std::string run(const std::vector<std::string> &argv) {
	std::string error;
	try {
		return host::run_program(argv);
	} catch (const Error &e) {
		error = e.what();
	}
	fail_msg("%s", error.c_str());
	return {};
}

// `qemu-img check` exits non-zero on corruptions and leaks; say so plainly too.
void check_image(const std::string &image) {
	std::string out = run({"qemu-img", "check", "-f", "qcow2", image});
	if (out.find("No errors were found on the image.") == std::string::npos)
		fail_msg("qemu-img check: %s", out.c_str());
}

// The guest's view of the image, as QEMU reads it.
std::vector<uint8_t> guest_view(const TempDir &dir, const std::string &image) {
	std::string raw = dir / "view.raw";
	std::filesystem::remove(raw);
	run({"qemu-img", "convert", "-f", "qcow2", "-O", "raw", image, raw});
	auto v = read_file(raw);
	std::filesystem::remove(raw);
	return v;
}

void assert_same(const std::vector<uint8_t> &got, const std::vector<uint8_t> &want) {
	assert_int_equal(got.size(), want.size());
	auto diff = std::mismatch(got.begin(), got.end(), want.begin());
	if (diff.first != got.end())
		fail_msg("first difference at byte %zu (chunk %zu)", static_cast<size_t>(diff.first - got.begin()),
		         static_cast<size_t>(diff.first - got.begin()) / kChunk);
}

void expect_status(cloudlet_status want, const char *what, auto &&fn) {
	std::string error = std::string("accepted: ") + what;
	try {
		fn();
	} catch (const Error &e) {
		if (e.status() == want)
			return;
		error = std::string(what) + ": status " + std::to_string(e.status()) + " (" + e.what() + ")";
	}
	fail_msg("%s", error.c_str());
}

uint64_t file_size(const std::string &path) {
	return std::filesystem::file_size(path);
}

} // namespace

// Thousands of chunks in shuffled order over many L2 tables, with zeroed
// chunks over non-zero backing data, an L1 range left untouched, the very
// last chunk, and a virtual size beyond the backing file's end (which is
// not a multiple of an L2 table's 2 MiB either).
static void test_round_trip_and_qemu_writes(void **) {
	TempDir dir;
	const uint64_t backing_size = 40 * kMiB + 12 * 1024;
	const uint64_t virtual_size = 50 * kMiB + 20 * 1024;
	const uint64_t chunks = virtual_size / kChunk, backing_chunks = backing_size / kChunk;
	auto backing = random_bytes(backing_size, 1);
	write_file(dir / "base.raw", backing);

	std::vector<uint8_t> expect = backing;
	expect.resize(virtual_size, 0);
	std::mt19937_64 rng(2);
	// L1 entry 20 (chunks 10240..10751) stays without an L2 table.
	auto untouched = [](uint64_t c) { return c / 512 == 20; };
	std::set<uint64_t> written{1, 511, 512, chunks - 1, backing_chunks - 1, backing_chunks, backing_chunks + 1};
	while (written.size() < 3000) {
		uint64_t c = rng() % chunks;
		if (!untouched(c))
			written.insert(c);
	}
	std::set<uint64_t> zeroed{2, backing_chunks - 2, chunks - 2};
	while (zeroed.size() < 400) {
		uint64_t c = rng() % backing_chunks;
		if (!untouched(c) && !written.count(c))
			zeroed.insert(c);
	}
	for (uint64_t c : zeroed)
		assert_false(written.count(c));
	struct Op {
		uint64_t chunk;
		bool zero;
	};
	std::vector<Op> ops;
	for (uint64_t c : written)
		ops.push_back({c, false});
	for (uint64_t c : zeroed)
		ops.push_back({c, true});
	std::shuffle(ops.begin(), ops.end(), rng);

	std::string image = dir / "layer.qcow2";
	uint64_t size = 0;
	{
		Qcow2LayerWriter w(image, virtual_size, dir / "base.raw", "raw");
		for (const Op &op : ops) {
			uint8_t *at = expect.data() + op.chunk * kChunk;
			if (op.zero) {
				w.zero_chunk(op.chunk);
				memset(at, 0, kChunk);
			} else {
				auto data = random_bytes(kChunk, 1000 + op.chunk);
				w.write_chunk(op.chunk, data.data());
				memcpy(at, data.data(), kChunk);
			}
		}
		assert_int_equal(w.data_chunks(), written.size());
		assert_int_equal(w.zero_chunks(), zeroed.size());
		size = w.finish();
	}
	assert_int_equal(size, file_size(image));
	// Data, header, L2 tables, L1 table and refcounts: nothing else.
	assert_true(size > (1 + written.size()) * kChunk);
	assert_true(size < (1 + written.size() + 40) * kChunk);
	check_image(image);
	assert_same(guest_view(dir, image), expect);

	// QEMU keeps writing: in place over our data cluster (chunk 1), into a
	// zeroed chunk (2, a new cluster and refcount), into the L1 entry that
	// has no L2 table yet, and into the last, partial L2 table.
	const uint64_t fresh = 20 * 512 + 7, tail = chunks - 3;
	run({"qemu-io", "-f", "qcow2", "-c", "write -P 0xab 4096 8192", "-c",
	     "write -P 0xcd " + std::to_string(fresh * kChunk) + " 4096", "-c",
	     "write -P 0xef " + std::to_string(tail * kChunk) + " 4096", image});
	memset(expect.data() + 4096, 0xab, 8192);
	memset(expect.data() + fresh * kChunk, 0xcd, kChunk);
	memset(expect.data() + tail * kChunk, 0xef, kChunk);
	check_image(image);
	assert_same(guest_view(dir, image), expect);
}

// No chunk at all: the layer is the backing file, zero-extended. A virtual
// size that is not a multiple of 4096 ends in a partial cluster.
static void test_empty_and_odd_size(void **) {
	TempDir dir;
	auto backing = random_bytes(kMiB, 3);
	write_file(dir / "base.raw", backing);
	for (uint64_t vsize : {kMiB, 3 * kMiB + 512}) {
		for (bool last : {false, true}) {
			std::string image = dir / "layer.qcow2";
			std::filesystem::remove(image);
			std::vector<uint8_t> expect = backing;
			expect.resize(vsize, 0);
			{
				Qcow2LayerWriter w(image, vsize, dir / "base.raw", "raw");
				if (last) {
					uint64_t c = (vsize - 1) / kChunk;
					auto data = random_bytes(kChunk, 4);
					w.write_chunk(c, data.data());
					memcpy(expect.data() + c * kChunk, data.data(), vsize - c * kChunk);
				}
				w.finish();
			}
			check_image(image);
			assert_same(guest_view(dir, image), expect);
		}
	}
}

// Refcount blocks count themselves: image sizes around the point where one
// 2048-cluster refcount block stops being enough.
static void test_refcount_block_boundary(void **) {
	TempDir dir;
	std::string image = dir / "layer.qcow2";
	auto data = random_bytes(kChunk, 11);
	write_file(dir / "base.raw", random_bytes(kMiB, 12));
	// 16 MiB: one L1 cluster; n data chunks need ceil(n / 512) L2 tables, so
	// the refcount area starts at cluster n + 6 for these n.
	for (uint64_t n = 2036; n <= 2046; n++) {
		std::filesystem::remove(image);
		uint64_t size = 0;
		{
			Qcow2LayerWriter w(image, 16 * kMiB, dir / "base.raw", "raw");
			for (uint64_t c = 0; c < n; c++)
				w.write_chunk(c, data.data());
			size = w.finish();
		}
		assert_int_equal(size, file_size(image));
		check_image(image);
	}
}

static void test_misuse(void **) {
	TempDir dir;
	std::string image = dir / "layer.qcow2";
	auto data = random_bytes(kChunk, 5);
	const uint64_t vsize = 4 * kMiB + 8192; // 1026 chunks
	{
		Qcow2LayerWriter w(image, vsize, "/nonexistent/base.raw", "raw");
		w.write_chunk(7, data.data());
		w.zero_chunk(8);
		expect_status(CLOUDLET_E_INVALID_ARG, "a chunk written twice", [&] { w.write_chunk(7, data.data()); });
		expect_status(CLOUDLET_E_INVALID_ARG, "a written chunk zeroed", [&] { w.zero_chunk(7); });
		expect_status(CLOUDLET_E_INVALID_ARG, "a zeroed chunk written", [&] { w.write_chunk(8, data.data()); });
		expect_status(CLOUDLET_E_INVALID_ARG, "a chunk zeroed twice", [&] { w.zero_chunk(8); });
		expect_status(CLOUDLET_E_INVALID_ARG, "the chunk after the end", [&] { w.write_chunk(1026, data.data()); });
		expect_status(CLOUDLET_E_INVALID_ARG, "a zero beyond the end", [&] { w.zero_chunk(uint64_t(1) << 60); });
		expect_status(CLOUDLET_E_INVALID_ARG, "null data", [&] { w.write_chunk(9, nullptr); });
		w.write_chunk(1025, data.data()); // the last one is fine
		assert_int_equal(w.data_chunks(), 2);
		expect_status(CLOUDLET_E_EXISTS, "an existing file",
		              [&] { Qcow2LayerWriter again(image, vsize, "/nonexistent/base.raw", "raw"); });
		assert_true(exists(image)); // the failed constructor did not remove ours
		w.finish();
		expect_status(CLOUDLET_E_INVALID_ARG, "a write after finish", [&] { w.write_chunk(3, data.data()); });
		expect_status(CLOUDLET_E_INVALID_ARG, "finish twice", [&] { w.finish(); });
	}
	assert_true(exists(image));
	std::filesystem::remove(image);
	auto refused = [&](uint64_t size, const std::string &backing, const std::string &format, const char *what) {
		expect_status(CLOUDLET_E_INVALID_ARG, what, [&] { Qcow2LayerWriter w(image, size, backing, format); });
		assert_false(exists(image));
	};
	refused(0, "/b.raw", "raw", "virtual size 0");
	refused(kMiB + 100, "/b.raw", "raw", "a virtual size that is not a multiple of 512");
	refused(uint64_t(8) << 40 | 512, "/b.raw", "raw", "a virtual size above 8 TiB");
	refused(kMiB, "b.raw", "raw", "a relative backing path");
	refused(kMiB, "", "raw", "no backing file");
	refused(kMiB, "/" + std::string(1023, 'b'), "raw", "a backing path of 1024 bytes");
	refused(kMiB, "/b.raw", "", "no backing format");
	refused(kMiB, "/b.raw", std::string(16, 'f'), "a 16-byte backing format");
	// The longest name and format still fit the header cluster.
	{
		Qcow2LayerWriter w(image, kMiB, "/" + std::string(1022, 'b'), std::string(15, 'f'));
		w.finish();
	}
	assert_true(exists(image));
}

static void test_unfinished_leaves_no_file(void **) {
	TempDir dir;
	std::string image = dir / "layer.qcow2";
	auto data = random_bytes(kChunk, 6);
	{
		Qcow2LayerWriter w(image, 64 * kMiB, "/base.raw", "raw");
		for (uint64_t c = 0; c < 600; c++) // more than the write buffer
			w.write_chunk(c * 13, data.data());
		assert_true(exists(image));
	}
	assert_false(exists(image));
	try {
		Qcow2LayerWriter w(image, 64 * kMiB, "/base.raw", "raw");
		w.write_chunk(1, data.data());
		w.write_chunk(1, data.data());
	} catch (const Error &) {
	}
	assert_false(exists(image));
}

static void test_qemu_img_info(void **) {
	TempDir dir;
	write_file(dir / "base.raw", random_bytes(2 * kMiB, 7));
	std::string image = dir / "layer.qcow2";
	const uint64_t vsize = 6 * kMiB + 4096;
	{
		Qcow2LayerWriter w(image, vsize, dir / "base.raw", "raw");
		auto data = random_bytes(kChunk, 8);
		w.write_chunk(3, data.data());
		w.finish();
	}
	std::string out = run({"qemu-img", "info", "--output=json", image});
	json_object *info = json_tokener_parse(out.c_str());
	assert_non_null(info);
	auto field = [&](json_object *o, const char *key) {
		json_object *v = nullptr;
		if (!json_object_object_get_ex(o, key, &v))
			fail_msg("qemu-img info has no '%s': %s", key, out.c_str());
		return v;
	};
	assert_string_equal(json_object_get_string(field(info, "format")), "qcow2");
	assert_string_equal(json_object_get_string(field(info, "backing-filename")), (dir / "base.raw").c_str());
	assert_string_equal(json_object_get_string(field(info, "backing-filename-format")), "raw");
	assert_int_equal(json_object_get_int64(field(info, "cluster-size")), 4096);
	assert_int_equal(json_object_get_int64(field(info, "virtual-size")), vsize);
	json_object *spec = field(field(info, "format-specific"), "data");
	assert_string_equal(json_object_get_string(field(spec, "compat")), "1.1"); // qcow2 v3
	assert_int_equal(json_object_get_int64(field(spec, "refcount-bits")), 16);
	assert_false(json_object_get_boolean(field(spec, "corrupt")));
	json_object_put(info);
}

// Not a pass/fail criterion: how fast chunks reach the file. 64 MiB by
// default; CLOUDLET_QCOW2_BENCH_MIB chooses another size.
static void test_throughput(void **) {
	TempDir dir;
	uint64_t mib = 64;
	if (const char *e = getenv("CLOUDLET_QCOW2_BENCH_MIB"))
		mib = strtoull(e, nullptr, 10);
	const uint64_t chunks = mib * kMiB / kChunk;
	std::vector<uint64_t> order(chunks);
	for (uint64_t i = 0; i < chunks; i++)
		order[i] = i * 2; // every other chunk of a disk twice the size
	std::shuffle(order.begin(), order.end(), std::mt19937_64(9));
	auto data = random_bytes(kMiB, 10);
	using clock = std::chrono::steady_clock;
	auto t0 = clock::now();
	Qcow2LayerWriter w(dir / "layer.qcow2", 2 * mib * kMiB, "/base.raw", "raw");
	for (uint64_t i = 0; i < chunks; i++)
		w.write_chunk(order[i], data.data() + (i % 256) * kChunk);
	auto t1 = clock::now();
	uint64_t size = w.finish();
	auto t2 = clock::now();
	auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
	print_message("# %llu MiB in shuffled 4 KiB chunks: %.0f MB/s writing, %.0f MB/s with finish() and fsync "
	              "(%.3f s), file %llu bytes\n",
	              static_cast<unsigned long long>(mib), mib * 1.048576 / secs(t1 - t0),
	              mib * 1.048576 / secs(t2 - t0), secs(t2 - t0), static_cast<unsigned long long>(size));
}

int main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_and_qemu_writes),
	    cmocka_unit_test(test_empty_and_odd_size),
	    cmocka_unit_test(test_refcount_block_boundary),
	    cmocka_unit_test(test_misuse),
	    cmocka_unit_test(test_unfinished_leaves_no_file),
	    cmocka_unit_test(test_qemu_img_info),
	    cmocka_unit_test(test_throughput),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
