// Round trip on real data: `virsh save` of the running test guest → our
// parser → our writer → `virsh restore` of what we wrote → the guest goes on
// as if nothing happened: a counter process keeps counting and files in its
// RAM disk keep their checksums (checked inside the guest).
#include "harness.h"

#include "byte_reader.h"
#include "memory_image.h"
#include "save_image.h"
#include "stream_parser.h"
#include "stream_writer.h"
#include "util/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet::qemu;

static th_guest *guest;

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

static void test_save_parse_write_restore(void **) {
	assert_int_equal(th_setup(), 0);
	if (th_guest_start(&guest, "roundtrip", nullptr) != 0)
		fail_msg("%s", th_error());
	// State to carry across: random files in the RAM disk and a live counter.
	std::string before = check(
	    "dd if=/dev/urandom of=/ram/a bs=1024 count=3000 2>/dev/null && "
	    "dd if=/dev/urandom of=/ram/b bs=4096 count=7 2>/dev/null && "
	    "head -c 100000 /dev/zero > /ram/zeros && md5sum /ram/a /ram/b /ram/zeros");
	check("(i=0; while :; do i=$((i+1)); echo $i > /ram/counter; sleep 0.1; done) >/dev/null 2>&1 & "
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
	DeviceStateLayout layout = split_device_state(img.device_state);
	assert_true(layout.split);
	bool has_cpu = false;
	for (const auto &s : layout.sections)
		has_cpu |= s.name == "cpu";
	assert_true(has_cpu);

	{
		int fd = open(rewritten.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		assert_true(fd >= 0);
		FdSink out(fd, rewritten);
		auto head = encode_save_header(h.domain_xml, h.cookie, h.was_running);
		out.write(head.data(), head.size());
		write_stream(out, img);
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
	assert_true(img2.device_state == img.device_state);
	unlink(saved.c_str()); // only our rewrite can bring the guest back now

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

int main() {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_save_parse_write_restore),
	};
	int rc = cmocka_run_group_tests_name("stream_roundtrip", tests, nullptr, nullptr);
	th_guest_destroy(guest);
	return rc;
}
