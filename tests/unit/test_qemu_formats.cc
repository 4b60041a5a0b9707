// qemu/ without QEMU: a synthetic stream written by our writer, parsed by our
// parser into the on-disk memory image, read back through mmap; and hostile
// variants of that image file. (Real QEMU streams are exercised in
// tests/integration/test_stream_roundtrip.cc.)
#include "byte_reader.h"
#include "image_file.h"
#include "memory_image.h"
#include "postcopy_stream.h"
#include "qmp_message.h"
#include "stream_parser.h"
#include "stream_summary.h"
#include "stream_writer.h"
#include "util/error.h"

#include <unistd.h>

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <string>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "largest_alloc.h"

using namespace cloudlet;
using namespace cloudlet::qemu;

namespace {

struct VectorSink : ByteSink {
	std::vector<uint8_t> bytes;
	void write(const uint8_t *d, size_t n) override { bytes.insert(bytes.end(), d, d + n); }
};

// Two blocks, some data pages, some zero pages, a one-device tail.
MemoryImage synthetic() {
	MemoryImage img;
	StreamInfo &si = img.info;
	si.version = 3;
	const std::string cfg = std::string("\x07\0\0\0\x0d", 5) + "pc-i440fx-7.2";
	si.config_section.assign(cfg.begin(), cfg.end());
	si.ram_section_id = 3;
	si.ram_version = 4;
	si.blocks.push_back({"pc.ram", 64 * 4096, 0});
	si.blocks.push_back({"pc.bios", 4 * 4096, 64});
	si.total_pages = 68;
	img.reset_pages(68);
	std::vector<uint8_t> page(4096);
	for (uint64_t p = 0; p < 68; p++) {
		if (p % 3 == 0) {
			img.set_page(p, nullptr, 0);
			continue;
		}
		memset(page.data(), static_cast<int>(p), page.size());
		page[17] = 0xa5;
		img.set_page(p, page.data(), 0);
	}
	std::vector<uint8_t> &t = img.info.device_state;
	t = {0x04, 0, 0, 0, 4, 5, 't', 'i', 'm', 'e', 'r', 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 0x7e, 0, 0, 0, 4, 0x00, 0x06};
	std::string json = "{\"devices\": [{\"name\": \"timer\", \"instance_id\": 0}]}";
	t.insert(t.end(), {0, 0, 0, static_cast<uint8_t>(json.size())});
	t.insert(t.end(), json.begin(), json.end());
	return img;
}

std::string temp_path(const char *name) {
	return std::string("/tmp/cloudlet-unit-") + std::to_string(getpid()) + "-" + name;
}

} // namespace

static void test_stream_and_image_file(void **) {
	MemoryImage img = synthetic();
	VectorSink stream;
	write_stream(stream, MemoryImageProvider(img));

	// Parse the stream straight into an image file, then read it back.
	std::string path = temp_path("image");
	{
		MemorySource src(stream.bytes.data(), stream.bytes.size());
		Reader r(src, "synthetic stream", 4096 * 3);
		ImageFileWriter w(path);
		StreamInfo si = parse_stream(r, w);
		assert_int_equal(si.total_pages, 68);
		assert_int_equal(si.blocks.size(), 2);
		w.finish(si);
	}
	ImageFile f(path);
	assert_string_equal(f.stream_info().machine_type.c_str(), "pc-i440fx-7.2");
	assert_int_equal(f.data_pages(), 45);
	assert_true(f.stream_info().device_state == img.info.device_state);
	for (uint64_t p = 0; p < 68; p++) {
		const uint8_t *a = img.data(p), *b = f.page(p);
		assert_int_equal(a == nullptr, b == nullptr);
		if (a)
			assert_memory_equal(a, b, 4096);
	}
	// Written again from the file, the stream is byte-identical.
	VectorSink again;
	write_stream(again, f);
	assert_true(again.bytes == stream.bytes);
	unlink(path.c_str());
}

static void test_live_stream_supersedes(void **) {
	// Pages sent twice (as a live migration does): the later version wins,
	// also when a data page later becomes zero.
	MemoryImage img = synthetic();
	VectorSink stream;
	write_stream(stream, MemoryImageProvider(img));
	MemoryImage twice;
	ImageBuilder b(twice);
	for (int pass = 0; pass < 2; pass++) {
		MemorySource src(stream.bytes.data(), stream.bytes.size());
		Reader r(src, "stream");
		twice.info = parse_stream(r, b);
	}
	assert_int_equal(twice.count(MemoryImage::kData), img.count(MemoryImage::kData));
	twice.set_page(1, nullptr, 0);
	assert_int_equal(twice.state(1), MemoryImage::kZero);
	assert_null(twice.data(1));
}

// A stream that declares 1 TiB of RAM and sends 68 pages (the synthetic
// stream with its block table patched): the summary `snapshot info` makes
// costs what was sent, not a state byte per declared page.
static void test_summary_costs_what_is_sent(void **) {
	MemoryImage img = synthetic();
	VectorSink stream;
	write_stream(stream, MemoryImageProvider(img));
	auto be64 = [](uint8_t *p, uint64_t v) {
		for (int i = 0; i < 8; i++)
			p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
	};
	const uint8_t name[] = {6, 'p', 'c', '.', 'r', 'a', 'm'};
	auto at = std::search(stream.bytes.begin(), stream.bytes.end(), name, name + sizeof name);
	assert_true(at != stream.bytes.end());
	size_t off = static_cast<size_t>(at - stream.bytes.begin());
	be64(&stream.bytes[off - 8], (1ull << 40) | 0x04); // total RAM | MEM_SIZE
	be64(&stream.bytes[off + 7], (1ull << 40) - 4 * 4096);
	MemorySource src(stream.bytes.data(), stream.bytes.size());
	Reader r(src, "stream");
	StreamSummary sum;
	g_largest_alloc = 0;
	StreamInfo si = parse_stream(r, sum);
	assert_int_equal(si.total_pages, 1ull << 28);
	auto counts = sum.counts(si);
	print_message("# 1 TiB declared, %llu page records: largest allocation %zu bytes\n",
	              (unsigned long long)sum.page_records, g_largest_alloc.load());
	assert_true(g_largest_alloc <= (1u << 20)); // a state byte per page was 256 MiB
	assert_int_equal(counts[0].data + counts[1].data, 45);
	assert_int_equal(counts[0].zero + counts[1].zero, 23);
	assert_int_equal(counts[0].unset, (1ull << 28) - 4 - 64);
	assert_int_equal(counts[1].unset, 0);
}

static void test_hostile_image_files(void **) {
	MemoryImage img = synthetic();
	std::string good = temp_path("good"), bad = temp_path("bad");
	{
		VectorSink stream;
		write_stream(stream, MemoryImageProvider(img));
		MemorySource src(stream.bytes.data(), stream.bytes.size());
		Reader r(src, "stream");
		ImageFileWriter w(good);
		w.finish(parse_stream(r, w));
	}
	std::vector<uint8_t> bytes;
	{
		FILE *f = fopen(good.c_str(), "rb");
		uint8_t buf[65536];
		size_t n;
		while ((n = fread(buf, 1, sizeof buf, f)) > 0)
			bytes.insert(bytes.end(), buf, buf + n);
		fclose(f);
	}
	auto attempt = [&](const std::vector<uint8_t> &b) {
		FILE *f = fopen(bad.c_str(), "wb");
		if (!b.empty())
			fwrite(b.data(), 1, b.size(), f);
		fclose(f);
		try {
			ImageFile file(bad);
			for (uint64_t p = 0; p < file.stream_info().total_pages; p++)
				file.page(p);
			return 0;
		} catch (const Error &e) {
			if (e.status() != CLOUDLET_E_CORRUPT && e.status() != CLOUDLET_E_UNSUPPORTED)
				fail_msg("status %d: %s", e.status(), e.what());
			return 1;
		}
	};
	int refused = 0;
	for (size_t len : {size_t(0), size_t(100), size_t(4096), bytes.size() / 2, bytes.size() - 1})
		refused += attempt(std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(len)));
	assert_int_equal(refused, 5);
	// Every header byte flipped in turn, and each 64-bit header field set huge.
	for (size_t at = 0; at < 80; at++) {
		auto b = bytes;
		b[at] ^= 0xff;
		attempt(b);
	}
	for (size_t at = 16; at < 64; at += 8) {
		auto b = bytes;
		memset(&b[at], 0xff, 8);
		refused += attempt(b);
	}
	assert_true(refused >= 5 + 5);
	// An index entry pointing past the data region.
	auto b = bytes;
	uint64_t meta = 0;
	memcpy(&meta, &b[48], 8);
	uint64_t meta_bytes = 0;
	memcpy(&meta_bytes, &b[56], 8);
	memset(&b[meta + meta_bytes - 8], 0x7f, 8);
	assert_int_equal(attempt(b), 1);
	unlink(good.c_str());
	unlink(bad.c_str());
}

static void test_qmp_messages(void **) {
	assert_string_equal(qmp_command("query-status").c_str(), "{\"execute\":\"query-status\"}");
	JsonPtr args(json_object_new_object());
	json_object_object_add(args.get(), "uri", json_object_new_string("fd:m\"x"));
	assert_string_equal(qmp_command("migrate", args.get()).c_str(),
	                    "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"fd:m\\\"x\"}}");
	JsonPtr r = qmp_parse_reply("{\"return\": {\"status\": \"running\"}}", "query-status");
	json_object *st = nullptr;
	assert_true(json_object_object_get_ex(r.get(), "status", &st));
	assert_string_equal(json_object_get_string(st), "running");
	try {
		qmp_parse_reply("{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}}", "migrate");
		fail_msg("error reply accepted");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_LIBVIRT);
		assert_string_equal(e.what(), "QEMU refused 'migrate': nope (GenericError)");
	}
	for (const char *bad : {"", "[1]", "{\"return\": ", "{}", "nonsense"}) {
		try {
			qmp_parse_reply(bad, "x");
			fail_msg("'%s' accepted", bad);
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
		}
	}
	// Events, as QEMU sends them and as libvirt's passthrough hands them over.
	QmpEvent e = qmp_parse_event("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, "
	                             "\"event\": \"MIGRATION\", \"data\": {\"status\": \"completed\"}}");
	assert_string_equal(e.name.c_str(), "MIGRATION");
	assert_string_equal(e.member("status").c_str(), "completed");
	assert_int_equal(e.seconds, 1700000000);
	assert_int_equal(e.micros, 123456);
	QmpEvent stop = qmp_parse_event("{\"event\": \"STOP\"}");
	assert_string_equal(stop.name.c_str(), "STOP");
	assert_string_equal(stop.member("status").c_str(), "");
	assert_int_equal(stop.seconds, -1);
	QmpEvent parts = qmp_event_from_parts("MIGRATION_PASS", 5, 7, "{\"pass\": 2}");
	json_object *pass = nullptr;
	assert_true(json_object_object_get_ex(parts.data.get(), "pass", &pass));
	assert_int_equal(json_object_get_int(pass), 2);
	assert_int_equal(qmp_event_from_parts("RESUME", 1, 2000000, nullptr).micros, 0);
	for (const char *bad : {"{\"return\": {}}", "{\"event\": 3}", "[]", "{"}) {
		try {
			qmp_parse_event(bad);
			fail_msg("'%s' accepted as an event", bad);
		} catch (const Error &err) {
			assert_int_equal(err.status(), CLOUDLET_E_CORRUPT);
		}
	}
	try {
		qmp_event_from_parts("X", 0, 0, "{not json");
		fail_msg("malformed event data accepted");
	} catch (const Error &err) {
		assert_int_equal(err.status(), CLOUDLET_E_CORRUPT);
	}
}

// The postcopy stream as QEMU 7.2's incoming side expects it (savevm.c):
// commands in their order, the device sections packaged without the EOF
// marker and description, pages after the package, RAM END, EOF.
static void test_postcopy_stream(void **) {
	MemoryImage img = synthetic();
	MemoryImageProvider prov(img);
	const std::vector<uint8_t> &ds = img.info.device_state;
	size_t sections = device_sections_end(ds);
	assert_int_equal(sections, 29 - 2); // the device section ends where EOF (0x00) and VMDESC (0x06) begin
	assert_int_equal(ds[sections], 0x00);
	VectorSink out;
	PostcopyWriter w(out, img.info);
	w.begin();
	w.start(ds);
	w.pages(prov, {1, 2, 64});
	w.end();
	const std::vector<uint8_t> &b = out.bytes;
	auto cmd_at = [&](size_t at, uint16_t cmd, uint16_t len) {
		assert_int_equal(b[at], 0x08);
		assert_int_equal((b[at + 1] << 8) | b[at + 2], cmd);
		assert_int_equal((b[at + 3] << 8) | b[at + 4], len);
	};
	size_t at = 8 + img.info.config_section.size();
	cmd_at(at, kCmdOpenReturnPath, 0);
	cmd_at(at + 5, kCmdPing, 4);
	assert_int_equal(b[at + 13], kPingSetup);
	cmd_at(at + 14, kCmdPostcopyAdvise, 16);
	assert_int_equal((b[at + 19 + 6] << 8) | b[at + 19 + 7], 4096); // host page summary
	assert_int_equal((b[at + 27 + 6] << 8) | b[at + 27 + 7], 4096); // target page size
	at += 35;
	assert_int_equal(b[at], 0x01); // the RAM START section follows
	// Past the block table: the one-page discard, then the package.
	size_t disc = at;
	while (!(b[disc] == 0x08 && b[disc + 2] == kCmdPostcopyRamDiscard))
		disc++;
	cmd_at(disc, kCmdPostcopyRamDiscard, 1 + 1 + 6 + 1 + 16);
	size_t pkg = disc + 5 + 25;
	cmd_at(pkg, kCmdPackaged, 4);
	uint32_t plen = (uint32_t(b[pkg + 5]) << 24) | (b[pkg + 6] << 16) | (b[pkg + 7] << 8) | b[pkg + 8];
	assert_int_equal(plen, 5 + sections + 9 + 5);
	size_t in = pkg + 9;
	cmd_at(in, kCmdPostcopyListen, 0);
	assert_memory_equal(&b[in + 5], ds.data(), sections);
	cmd_at(in + 5 + sections, kCmdPing, 4);
	assert_int_equal(b[in + 5 + sections + 8], kPingDevicesLoaded);
	cmd_at(in + 5 + sections + 9, kCmdPostcopyRun, 0);
	// After the package: a PART section with pages 1, 2 (pc.ram) and 64 (the
	// first of pc.bios, so named), then END and EOF.
	size_t part = pkg + 9 + plen;
	assert_int_equal(b[part], 0x02);
	assert_int_equal(b.back(), 0x00);
	assert_int_equal(b[b.size() - 1 - 5 - 8 - 5], 0x03);
	assert_int_equal(b.size(), part + 5 + (8 + 7 + 4096) + (8 + 4096) + (8 + 8 + 4096) + 8 + 5 + 5 + 8 + 5 + 1);

	// A device state that does not end as QEMU ends it is refused.
	std::vector<uint8_t> cut(ds.begin(), ds.begin() + 20);
	assert_int_equal(device_sections_end(cut), std::string::npos);
	try {
		w.start(cut);
		fail_msg("a cut device state was packaged");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
	}
}

namespace {

std::vector<uint8_t> rp(uint16_t type, const std::vector<uint8_t> &body, int len = -1) {
	uint16_t l = len < 0 ? static_cast<uint16_t>(body.size()) : static_cast<uint16_t>(len);
	std::vector<uint8_t> m(4 + body.size());
	m[0] = uint8_t(type >> 8);
	m[1] = uint8_t(type);
	m[2] = uint8_t(l >> 8);
	m[3] = uint8_t(l);
	std::copy(body.begin(), body.end(), m.begin() + 4);
	return m;
}

std::vector<uint8_t> req(uint64_t offset, uint32_t bytes, const std::string &name = "") {
	std::vector<uint8_t> b;
	for (int i = 7; i >= 0; i--)
		b.push_back(uint8_t(offset >> (8 * i)));
	for (int i = 3; i >= 0; i--)
		b.push_back(uint8_t(bytes >> (8 * i)));
	if (!name.empty()) {
		b.push_back(static_cast<uint8_t>(name.size()));
		b.insert(b.end(), name.begin(), name.end());
	}
	return b;
}

// Reads every message; returns them, or the error's message.
std::string read_all(const std::vector<uint8_t> &bytes, const StreamInfo &info, std::vector<ReturnMessage> *got) {
	MemorySource src(bytes.data(), bytes.size());
	ReturnPathReader r(src, info);
	ReturnMessage m;
	try {
		while (r.next(m))
			got->push_back(m);
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
		return e.what();
	}
	return "";
}

} // namespace

// QEMU's return path, and what a broken or hostile one gets: an error that
// says what is wrong, never a page outside the memory.
static void test_return_path_messages(void **) {
	MemoryImage img = synthetic();
	std::vector<uint8_t> ok;
	for (auto part : {rp(kRpPong, {0, 0, 0, 1}), rp(kRpReqPagesId, req(4096 * 5, 8192, "pc.ram")),
	                  rp(kRpReqPages, req(4096 * 63, 4096)), rp(kRpReqPagesId, req(4096 * 3, 4096, "pc.bios")),
	                  rp(kRpShut, {0, 0, 0, 0})})
		ok.insert(ok.end(), part.begin(), part.end());
	std::vector<ReturnMessage> got;
	assert_string_equal(read_all(ok, img.info, &got).c_str(), "");
	assert_int_equal(got.size(), 5);
	assert_int_equal(got[0].type, kRpPong);
	assert_int_equal(got[0].value, 1);
	assert_int_equal(got[1].first_page, 5);
	assert_int_equal(got[1].pages, 2);
	assert_int_equal(got[2].first_page, 63);
	assert_int_equal(got[3].first_page, 64 + 3);
	assert_int_equal(got[4].type, kRpShut);

	struct Bad {
		std::vector<uint8_t> bytes;
		const char *says;
	} bad[] = {
	    {rp(9, {0, 0, 0, 0}), "unexpected return-path message type 9"},
	    {rp(kRpPong, {0, 0}), "has length 2, not 4"},
	    {rp(kRpReqPages, req(0, 4096)), "before any REQ_PAGES_ID"},
	    {rp(kRpReqPagesId, req(0, 4096, "vga.vram")), "'vga.vram', which this stream does not have"},
	    {rp(kRpReqPagesId, req(4096 * 63, 8192, "pc.ram")), "outside 'pc.ram'"},
	    {rp(kRpReqPagesId, req(UINT64_MAX & ~4095ull, 4096, "pc.ram")), "outside 'pc.ram'"},
	    {rp(kRpReqPagesId, req(100, 4096, "pc.ram")), "not page-aligned"},
	    {rp(kRpReqPagesId, req(0, 0, "pc.ram")), "outside"},
	    {rp(kRpReqPagesId, req(0, 4096, "pc.ram"), 30), "does not match its block name"},
	    {rp(kRpReqPagesId, req(0, 4096), 12), "too short"},
	    {std::vector<uint8_t>{0, 2, 0}, "ends"},
	};
	for (const Bad &b : bad) {
		std::vector<ReturnMessage> none;
		std::string err = read_all(b.bytes, img.info, &none);
		print_message("# %s\n", err.c_str());
		assert_non_null(strstr(err.c_str(), b.says));
	}
}

int main() {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stream_and_image_file),
	    cmocka_unit_test(test_live_stream_supersedes),
	    cmocka_unit_test(test_summary_costs_what_is_sent),
	    cmocka_unit_test(test_hostile_image_files),
	    cmocka_unit_test(test_qmp_messages),
	    cmocka_unit_test(test_postcopy_stream),
	    cmocka_unit_test(test_return_path_messages),
	};
	return cmocka_run_group_tests_name("qemu_formats", tests, nullptr, nullptr);
}
