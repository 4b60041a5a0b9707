// Round trip on real data: `virsh save` of the running test guest → our
// parser → our writer → `virsh restore` of what we wrote → the guest goes on
// as if nothing happened: a counter process keeps counting and files in its
// RAM disk keep their checksums (checked inside the guest).
#include "harness.h"

#include "byte_reader.h"
#include "qmp_message.h"
#include "virt/event_loop.h"
#include "virt/qmp_client.h"
#include "image_file.h"
#include "memory_image.h"
#include "save_image.h"
#include "stream_parser.h"
#include "stream_writer.h"
#include "util/error.h"
#include "util/progress.h"
#include "virt/streamed_restore.h"

#include <cloudlet.h>

#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <unistd.h>

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet::qemu;

static th_guest *guest;
static std::string sample_image; // a real save image, kept for the hostile-input test

static std::vector<uint8_t> read_all(const std::string &path) {
	std::vector<uint8_t> out;
	FILE *f = fopen(path.c_str(), "rb");
	assert_non_null(f);
	uint8_t buf[1 << 16];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		out.insert(out.end(), buf, buf + n);
	fclose(f);
	return out;
}

static void write_all(const std::string &path, const uint8_t *data, size_t n) {
	FILE *f = fopen(path.c_str(), "wb");
	assert_non_null(f);
	if (n)
		assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void copy_file(const std::string &from, const std::string &to) {
	auto d = read_all(from);
	write_all(to, d.data(), d.size());
}

static std::string check(const char *cmd) {
	char *out = th_guest_check(guest, cmd, 60000);
	if (!out)
		fail_msg("%s", th_error());
	std::string s = out;
	free(out);
	return s;
}

static void load(const std::string &path, SaveImageHeader *h, MemoryImage *img) {
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	FdSource src(fd, path);
	Reader r(src, path);
	*h = read_save_header(r);
	ImageBuilder b(*img);
	img->info = parse_stream(r, b);
	close(fd);
}

static void start_guest() {
	if (guest)
		return;
	assert_int_equal(th_setup(), 0);
	if (th_guest_start(&guest, "roundtrip", nullptr) != 0)
		fail_msg("%s", th_error());
}

// The QMP client through libvirt's monitor passthrough, on the live guest.
static void test_qmp_on_live_guest(void **) {
	start_guest();
	assert_true(cloudlet::virt::ensure_event_loop()); // before the connection: events need it
	virConnectPtr conn = virConnectOpen("qemu:///system");
	assert_non_null(conn);
	virDomainPtr dom = virDomainLookupByName(conn, th_guest_domain_name(guest));
	assert_non_null(dom);
	cloudlet::virt::QmpClient qmp(dom);
	JsonPtr st = qmp.execute("query-status");
	json_object *status = nullptr;
	assert_true(json_object_object_get_ex(st.get(), "status", &status));
	assert_string_equal(json_object_get_string(status), "running");
	JsonPtr caps = qmp.execute("query-migrate-capabilities");
	bool xbzrle = false;
	for (size_t i = 0; i < json_object_array_length(caps.get()); i++) {
		json_object *c = json_object_array_get_idx(caps.get(), i), *name = nullptr;
		if (json_object_object_get_ex(c, "capability", &name))
			xbzrle |= strcmp(json_object_get_string(name), "xbzrle") == 0;
	}
	assert_true(xbzrle);
	try {
		qmp.execute("no-such-command");
		fail_msg("an unknown QMP command succeeded");
	} catch (const cloudlet::Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_LIBVIRT);
		assert_non_null(strstr(e.what(), "CommandNotFound"));
	}
	// Asynchronous events: STOP and RESUME as libvirt pauses and resumes.
	{
		std::mutex mu;
		std::condition_variable cv;
		std::vector<std::string> seen;
		auto sub = qmp.subscribe("", [&](const QmpEvent &e) {
			std::lock_guard lk(mu);
			if (e.name == "STOP" || e.name == "RESUME")
				seen.push_back(e.name);
			cv.notify_all();
		});
		assert_int_equal(virDomainSuspend(dom), 0);
		assert_int_equal(virDomainResume(dom), 0);
		std::unique_lock lk(mu);
		assert_true(cv.wait_for(lk, std::chrono::seconds(10), [&] { return seen.size() >= 2; }));
		assert_string_equal(seen[0].c_str(), "STOP");
		assert_string_equal(seen[1].c_str(), "RESUME");
	}
	// A pipe's write end handed to QEMU by name, then released again.
	int p[2];
	assert_int_equal(pipe(p), 0);
	JsonPtr args(json_object_new_object());
	json_object_object_add(args.get(), "fdname", json_object_new_string("cloudlet-test"));
	qmp.execute_with_fds("getfd", args.get(), {p[1]});
	qmp.execute("closefd", args.get());
	close(p[0]);
	close(p[1]);
	virDomainFree(dom);
	virConnectClose(conn);
}

// A restore fed through a FIFO (virt::restore_streamed, as a handoff's
// destination does while ITEMS arrive) whose producer fails: QEMU then fails
// too ("load of migration failed"), but the error reported is the first
// cause. A producer that fails on its own (an authenticated peer's bad ITEMS
// batch) is reported as itself; one whose write fails because libvirt stopped
// reading first is reported as libvirt's error. Nothing is left running.
static void streamed_restore_reports_first_cause(const std::string &dir, const std::string &image) {
	std::vector<uint8_t> bytes = read_all(image);
	virConnectPtr conn = virConnectOpen("qemu:///system");
	assert_non_null(conn);
	cloudlet::Progress progress;
	std::string fifo = dir + "/restore.fifo";
	auto run = [&](const std::function<void(ByteSink &)> &produce, std::string *msg) {
		try {
			cloudlet::virt::restore_streamed(conn, fifo, produce, true, progress);
		} catch (const cloudlet::Error &e) {
			*msg = e.what();
			return static_cast<int>(e.status());
		}
		return 0;
	};
	auto gone = [&] {
		virDomainPtr d = virDomainLookupByName(conn, th_guest_domain_name(guest));
		if (d) {
			virDomainFree(d);
			return false;
		}
		return true;
	};
	std::string msg;
	// The header, the stream's start and 8 MiB of RAM went out; then the
	// next ITEMS batch names a page past the guest's RAM.
	int st = run(
	    [&](ByteSink &sink) {
		    sink.write(bytes.data(), 8u << 20);
		    throw cloudlet::Error(CLOUDLET_E_CORRUPT, "handoff ITEMS batch: item 7: memory chunk 99999999 is beyond "
		                                              "the launch VM's 65595 pages");
	    },
	    &msg);
	fprintf(stderr, "# producer failed first: %d %s\n", st, msg.c_str());
	assert_int_equal(st, CLOUDLET_E_CORRUPT);
	assert_non_null(strstr(msg.c_str(), "ITEMS"));
	assert_true(gone());
	// libvirt refuses the image's XML before reading the stream: the
	// producer's writes fail, libvirt's error is the cause.
	std::vector<uint8_t> head = encode_save_header("<domain type='qemu'><name>x</name></domain>", "", false);
	st = run(
	    [&](ByteSink &sink) {
		    sink.write(head.data(), head.size());
		    std::vector<uint8_t> junk(1 << 20, 0x5a);
		    for (int i = 0; i < 1024; i++)
			    sink.write(junk.data(), junk.size());
	    },
	    &msg);
	fprintf(stderr, "# libvirt failed first: %d %s\n", st, msg.c_str());
	assert_int_equal(st, CLOUDLET_E_LIBVIRT);
	assert_null(strstr(msg.c_str(), "cannot write"));
	assert_int_equal(access(fifo.c_str(), F_OK), -1); // the FIFO is gone
	virConnectClose(conn);
}

static void test_save_parse_write_restore(void **) {
	start_guest();
	// State to carry across: random files in the RAM disk and a live counter.
	std::string before = check(
	    "dd if=/dev/urandom of=/ram/a bs=1024 count=3000 2>/dev/null && "
	    "dd if=/dev/urandom of=/ram/b bs=4096 count=7 2>/dev/null && "
	    "head -c 100000 /dev/zero > /ram/zeros && md5sum /ram/a /ram/b /ram/zeros");
	check("(i=0; while :; do i=$((i+1)); echo $i > /ram/counter.t; mv /ram/counter.t /ram/counter; sleep 0.1; done) >/dev/null 2>&1 & "
	      "sleep 1");
	std::string counter_before = check("cat /ram/counter");
	assert_true(atoi(counter_before.c_str()) > 0);

	std::string dir = th_guest_workdir(guest);
	std::string saved = dir + "/saved.img", rewritten = dir + "/rewritten.img";
	if (th_guest_save(guest, saved.c_str()) != 0)
		fail_msg("%s", th_error());

	SaveImageHeader h;
	MemoryImage img;
	load(saved, &h, &img);
	assert_true(h.complete);
	assert_int_equal(h.was_running, 1);
	assert_non_null(strstr(h.domain_xml.c_str(), th_guest_domain_name(guest)));
	assert_string_equal(img.info.machine_type.substr(0, 9).c_str(), "pc-i440fx");
	assert_string_equal(img.info.blocks[0].name.c_str(), "pc.ram");
	assert_int_equal(img.info.blocks[0].length, 256ull << 20);
	assert_int_equal(img.count(MemoryImage::kUnset), 0);   // every page was sent
	assert_true(img.count(MemoryImage::kData) > 1000);
	assert_true(img.count(MemoryImage::kZero) > 1000);
	DeviceStateLayout layout = split_device_state(img.info.device_state);
	assert_true(layout.split);
	bool has_cpu = false;
	for (const auto &s : layout.sections)
		has_cpu |= s.name == "cpu";
	assert_true(has_cpu);

	// The canonical on-disk image, written while parsing, read back by mmap,
	// holds the same pages and device state.
	std::string image_path = dir + "/memory.img";
	{
		int fd = open(saved.c_str(), O_RDONLY | O_CLOEXEC);
		FdSource src(fd, saved);
		Reader r(src, saved);
		read_save_header(r);
		ImageFileWriter w(image_path);
		StreamInfo si = parse_stream(r, w);
		w.finish(si);
		close(fd);
	}
	ImageFile file(image_path);
	assert_int_equal(file.stream_info().total_pages, img.total_pages());
	assert_int_equal(file.data_pages(), img.count(MemoryImage::kData));
	assert_string_equal(file.stream_info().machine_type.c_str(), img.info.machine_type.c_str());
	assert_true(file.stream_info().device_state == img.info.device_state);
	for (uint64_t p = 0; p < img.total_pages(); p++) {
		const uint8_t *a = img.data(p), *b = file.page(p);
		if ((a == nullptr) != (b == nullptr) || (a && memcmp(a, b, 4096) != 0))
			fail_msg("page %llu differs in the image file", static_cast<unsigned long long>(p));
	}
	// The stream we restore from is written from the mmap'ed image file.
	{
		int fd = open(rewritten.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		assert_true(fd >= 0);
		FdSink out(fd, rewritten);
		auto head = encode_save_header(h.domain_xml, h.cookie, h.was_running);
		out.write(head.data(), head.size());
		write_stream(out, file);
		out.flush();
		close(fd);
	}
	// What we wrote parses back to the same memory, page for page.
	SaveImageHeader h2;
	MemoryImage img2;
	load(rewritten, &h2, &img2);
	assert_string_equal(h2.domain_xml.c_str(), h.domain_xml.c_str());
	assert_int_equal(img2.total_pages(), img.total_pages());
	for (uint64_t p = 0; p < img.total_pages(); p++) {
		const uint8_t *a = img.data(p), *b = img2.data(p);
		if ((a == nullptr) != (b == nullptr) || (a && memcmp(a, b, 4096) != 0))
			fail_msg("page %llu differs after the rewrite", static_cast<unsigned long long>(p));
	}
	assert_true(img2.info.device_state == img.info.device_state);
	unlink(saved.c_str()); // only our rewrite can bring the guest back now
	// Keep a copy of a real image for the hostile-input test below.
	sample_image = std::string(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp") + "/cloudlet-test-image-" +
	               std::to_string(getpid());
	copy_file(rewritten, sample_image);

	streamed_restore_reports_first_cause(dir, rewritten);

	if (th_guest_restore(guest, rewritten.c_str()) != 0)
		fail_msg("%s", th_error());
	std::string after = check("md5sum /ram/a /ram/b /ram/zeros");
	assert_string_equal(after.c_str(), before.c_str());
	int c1 = atoi(check("cat /ram/counter").c_str());
	assert_true(c1 >= atoi(counter_before.c_str()));
	check("sleep 1");
	int c2 = atoi(check("cat /ram/counter").c_str());
	assert_true(c2 > c1); // the counter process survived and keeps counting
	th_guest_destroy(guest);
	guest = nullptr;
}

// Truncated, bit-flipped and garbage versions of a real image: each gives a
// clean status (corrupt/unsupported, the message naming the offset) or, where
// a flip only changed page contents, a successful read. Never a crash, hang
// or unbounded allocation (this test also runs under ASan/UBSan).
static void test_hostile_images(void **) {
	if (sample_image.empty())
		skip();
	std::vector<uint8_t> img = read_all(sample_image);
	unlink(sample_image.c_str());
	std::string path = sample_image + ".bad";
	cloudlet_ctx *ctx = nullptr;
	assert_int_equal(cloudlet_ctx_new(&ctx, nullptr), CLOUDLET_OK);
	int ok = 0, refused = 0;
	auto inspect = [&](const std::vector<uint8_t> &bytes, bool may_succeed, const char *what) {
		write_all(path, bytes.data(), bytes.size());
		cloudlet_snapshot_info *info = nullptr;
		cloudlet_status st = cloudlet_snapshot_inspect(&info, ctx, path.c_str(), nullptr);
		if (st == CLOUDLET_OK) {
			if (!may_succeed)
				fail_msg("%s was accepted", what);
			cloudlet_snapshot_info_free(info);
			ok++;
			return;
		}
		assert_null(info);
		const char *m = cloudlet_last_error_message();
		if (st != CLOUDLET_E_CORRUPT && st != CLOUDLET_E_UNSUPPORTED)
			fail_msg("%s: unexpected status %d: %s", what, st, m);
		if (st == CLOUDLET_E_CORRUPT && !strstr(m, "offset "))
			fail_msg("%s: message names no offset: %s", what, m);
		refused++;
	};
	size_t stream_at = 92 + *reinterpret_cast<const uint32_t *>(img.data() + 20);
	// Truncations: in the header, the XML, the stream header, RAM, device state.
	for (size_t len : {size_t(0), size_t(1), size_t(16), size_t(91), size_t(92), size_t(1000), stream_at - 1,
	                   stream_at, stream_at + 4, stream_at + 9, stream_at + 30, stream_at + 200,
	                   size_t(5) << 20, img.size() / 2, img.size() - 150000, img.size() - 1})
		inspect(std::vector<uint8_t>(img.begin(), img.begin() + static_cast<long>(len)), false, "a truncated image");
	// Bit flips near the start of the stream (headers, block table, first
	// records) on a 5 MB prefix: every result is a clean refusal.
	std::mt19937_64 rng(42);
	std::vector<uint8_t> prefix(img.begin(), img.begin() + (5 << 20));
	for (int i = 0; i < 300; i++) {
		auto bad = prefix;
		size_t at = stream_at + rng() % 4096;
		bad[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
		inspect(bad, false, "a flipped prefix");
	}
	// Flips in the libvirt header and anywhere in the whole image.
	for (int i = 0; i < 12; i++) {
		auto bad = img;
		size_t at = i < 6 ? rng() % stream_at : rng() % img.size();
		bad[at] ^= 0x5a;
		inspect(bad, true, "a flipped image");
	}
	// Garbage, and garbage behind valid headers.
	std::vector<uint8_t> junk(1 << 20);
	for (auto &b : junk)
		b = static_cast<uint8_t>(rng());
	inspect(junk, false, "random bytes");
	std::vector<uint8_t> g2(img.begin(), img.begin() + static_cast<long>(stream_at + 8));
	g2.insert(g2.end(), junk.begin(), junk.end());
	inspect(g2, false, "garbage after the stream header");
	// Hostile sizes: absurd XML length, absurd RAM total.
	auto big_xml = img;
	big_xml.resize(stream_at + 100);
	*reinterpret_cast<uint32_t *>(big_xml.data() + 20) = 0xffffffffu;
	inspect(big_xml, false, "a 4 GiB XML length");
	auto big_ram = std::vector<uint8_t>(img.begin(), img.begin() + static_cast<long>(stream_at + 200));
	// QEVM, version, configuration (type, be32 length, machine name), then the
	// RAM section header (type, id, "ram", instance, version), then the be64
	// MEM_SIZE word whose top byte we make absurd.
	size_t name_len = (size_t(big_ram[stream_at + 9]) << 24) | (size_t(big_ram[stream_at + 10]) << 16) |
	                  (size_t(big_ram[stream_at + 11]) << 8) | big_ram[stream_at + 12];
	size_t ram_hdr = stream_at + 8 + 1 + 4 + name_len;
	assert_int_equal(big_ram[ram_hdr], 0x01);
	assert_memory_equal(&big_ram[ram_hdr + 6], "ram", 3);
	big_ram[ram_hdr + 1 + 4 + 1 + 3 + 4 + 4] = 0x7f;
	inspect(big_ram, false, "an absurd RAM size");
	unlink(path.c_str());
	cloudlet_ctx_free(ctx);
	fprintf(stderr, "# hostile images: %d refused cleanly, %d read (flips inside page data)\n", refused, ok);
	assert_true(refused >= 320);
}

int main() {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_qmp_on_live_guest),
	    cmocka_unit_test(test_save_parse_write_restore),
	    cmocka_unit_test(test_hostile_images),
	};
	int rc = cmocka_run_group_tests_name("stream_roundtrip", tests, nullptr, nullptr);
	th_guest_destroy(guest);
	return rc;
}
