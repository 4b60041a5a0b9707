// Live capture (cloudlet_snapshot_capture) against the real test guest:
//  - refusals and cancels leave the domain running, untouched, no output;
//  - a live capture of a guest that keeps dirtying memory restores to a
//    guest whose state is consistent with one instant (the final pass):
//    static files keep their checksums, every file the dirtier finished
//    matches the checksum in its name, the counter continues;
//  - a paced live capture, kept paused: every page it delivered is what
//    QEMU itself reads from the paused guest's RAM (pmemsave) — QEMU 7.2's
//    own stream loses guest writes under TCG, our check after it must not;
//  - a paused domain's capture as our memory image holds exactly the pages
//    of its capture as a save image; `stop` shuts the domain off and the
//    save image brings it back.
#include "harness.h"

#include "image_file.h"
#include "ops/context.h"
#include "memory_image.h"
#include "save_image.h"
#include "stream_parser.h"
#include "stream_writer.h"
#include "virt/domain.h"
#include "virt/migration_capture.h"

#include <cloudlet.h>

#include <fcntl.h>
#include <json-c/json.h>
#include <sys/wait.h>
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet::qemu;

static th_guest *guest;
static cloudlet_ctx *ctx;

static std::string check(const char *cmd, int timeout_ms = 60000) {
	char *out = th_guest_check(guest, cmd, timeout_ms);
	if (!out)
		fail_msg("%s", th_error());
	std::string s = out;
	free(out);
	return s;
}

static bool exists(const std::string &path) {
	struct stat st;
	return stat(path.c_str(), &st) == 0;
}

static int counter() { return atoi(check("cat /ram/counter").c_str()); }

// The counter goes on: two readings a second apart differ.
static void assert_counting() {
	int a = counter();
	check("sleep 1");
	int b = counter();
	if (b <= a)
		fail_msg("the guest's counter stopped at %d", a);
}

static int domain_state() {
	virConnectPtr c = virConnectOpen("qemu:///system");
	assert_non_null(c);
	virDomainPtr d = virDomainLookupByName(c, th_guest_domain_name(guest));
	int state = VIR_DOMAIN_SHUTOFF, reason = 0;
	if (d) {
		virDomainGetState(d, &state, &reason, 0);
		virDomainFree(d);
	}
	virConnectClose(c);
	return state;
}

static void set_paused(bool paused) {
	virConnectPtr c = virConnectOpen("qemu:///system");
	assert_non_null(c);
	virDomainPtr d = virDomainLookupByName(c, th_guest_domain_name(guest));
	assert_non_null(d);
	assert_int_equal(paused ? virDomainSuspend(d) : virDomainResume(d), 0);
	virDomainFree(d);
	virConnectClose(c);
}

static cloudlet_status capture(const std::string &path, cloudlet_capture_options *o, cloudlet_capture_result **r) {
	return cloudlet_snapshot_capture(r, ctx, th_guest_domain_name(guest), path.c_str(), o);
}

static int setup(void **) {
	assert_int_equal(th_setup(), 0);
	if (th_guest_start(&guest, "capture", nullptr) != 0)
		fail_msg("%s", th_error());
	assert_int_equal(cloudlet_ctx_new(&ctx, nullptr), CLOUDLET_OK);
	// State to carry: random files, a counter, and a process that keeps
	// rewriting 2 MiB files named after their own checksum.
	check("dd if=/dev/urandom of=/ram/a bs=1024 count=3000 2>/dev/null && "
	      "dd if=/dev/urandom of=/ram/b bs=4096 count=9 2>/dev/null && md5sum /ram/a /ram/b > /ram/sums");
	check("(i=0; while :; do i=$((i+1)); echo $i > /ram/counter.t; mv /ram/counter.t /ram/counter; sleep 0.1; done) >/dev/null 2>&1 & sleep 1");
	check("mkdir -p /ram/d && (n=0; while :; do n=$((n+1)); "
	      "dd if=/dev/urandom of=/ram/d/new bs=65536 count=32 2>/dev/null; "
	      "s=$(md5sum /ram/d/new | cut -c1-32); mv /ram/d/new /ram/d/f.$n.$s; "
	      "rm -f /ram/d/f.$((n-4)).*; done) >/dev/null 2>&1 & sleep 2");
	return 0;
}

static int teardown(void **) {
	cloudlet_ctx_free(ctx);
	th_guest_destroy(guest);
	return 0;
}

// The guest's memory is one consistent instant: static files intact, each
// finished dirtier file matches its name, and both processes go on.
static void assert_fingerprint() {
	assert_string_equal(check("md5sum -c -s /ram/sums && echo same").c_str(), "same");
	// The dirtier deletes old files as it goes: one that vanished between
	// the glob and md5sum is skipped (an open file reads whole even if
	// unlinked meanwhile).
	std::string bad = check("cd /ram/d && n=0; for f in f.*; do s=${f##*.}; "
	                        "m=$(md5sum $f 2>/dev/null | cut -c1-32); [ -z \"$m\" ] && continue; n=$((n+1)); "
	                        "[ \"$m\" = \"$s\" ] || echo \"BAD $f\"; done; echo $n");
	if (bad.find("BAD") != std::string::npos || atoi(bad.substr(bad.rfind('\n') + 1).c_str()) < 1)
		fail_msg("dirtier files after restore: %s", bad.c_str());
	std::string first = check("ls /ram/d | sort -t. -k2 -n | tail -1");
	check("sleep 2");
	std::string later = check("ls /ram/d | sort -t. -k2 -n | tail -1");
	if (first == later)
		fail_msg("the dirtier stopped at %s", first.c_str());
	assert_counting();
}

struct CancelAt {
	bool on_first = false; // cancel on the very first report
	int calls = 0;
	std::string phases;
};

static int cancel_cb(const char *phase, uint64_t done, uint64_t, void *ud) {
	auto *c = static_cast<CancelAt *>(ud);
	c->calls++;
	c->phases += std::string(phase) + ",";
	if (c->on_first)
		return 1;
	// Cancel as soon as QEMU has sent something, or at the latest while
	// the output is written: either way the capture must be undone.
	return (strcmp(phase, "capture") == 0 && done > 0) || strcmp(phase, "write") == 0;
}

static void test_refusals_leave_domain_running(void **) {
	std::string dir = th_guest_workdir(guest);
	cloudlet_capture_result *r = nullptr;
	cloudlet_capture_options o = CLOUDLET_CAPTURE_OPTIONS_INIT;

	assert_int_equal(cloudlet_snapshot_capture(&r, ctx, "cloudlet-no-such-domain", "/tmp/x", &o),
	                 CLOUDLET_E_NOT_FOUND);
	assert_non_null(strstr(cloudlet_last_error_message(), "cloudlet-no-such-domain"));
	assert_null(r);

	// Output folder missing: refused before QEMU sends a byte, VM untouched.
	assert_int_not_equal(capture("/nonexistent-dir/out.img", &o, &r), CLOUDLET_OK);
	assert_non_null(strstr(cloudlet_last_error_message(), "/nonexistent-dir/out.img"));
	assert_int_equal(domain_state(), VIR_DOMAIN_RUNNING);

	// Cancelled at once, during the migration, or while writing (non-live:
	// the VM was paused by us and must run again).
	for (int live = 0; live <= 1; live++) {
		for (int first = 1; first >= 0; first--) {
			CancelAt c;
			c.on_first = first;
			cloudlet_capture_options co = CLOUDLET_CAPTURE_OPTIONS_INIT;
			co.live = live;
			co.progress = cancel_cb;
			co.progress_userdata = &c;
			std::string out = dir + "/cancelled.img";
			assert_int_equal(capture(out, &co, &r), CLOUDLET_E_CANCELLED);
			assert_false(exists(out));
			assert_false(exists(out + ".part"));
			assert_false(exists(out + ".cltmem.part"));
			assert_int_equal(domain_state(), VIR_DOMAIN_RUNNING);
			assert_counting();
		}
	}
	// A cancel handle fired before the call.
	cloudlet_cancel *cancel = nullptr;
	assert_int_equal(cloudlet_cancel_new(&cancel), CLOUDLET_OK);
	cloudlet_cancel_trigger(cancel);
	o.cancel = cancel;
	assert_int_equal(capture(dir + "/c2.img", &o, &r), CLOUDLET_E_CANCELLED);
	cloudlet_cancel_free(cancel);
	assert_int_equal(domain_state(), VIR_DOMAIN_RUNNING);
	assert_counting();
	assert_fingerprint();
}

static void test_live_capture_of_dirtying_guest(void **) {
	std::string path = std::string(th_guest_workdir(guest)) + "/live.img";
	int before = counter();
	cloudlet_capture_options o = CLOUDLET_CAPTURE_OPTIONS_INIT;
	o.live = 1;
	cloudlet_capture_result *r = nullptr;
	if (capture(path, &o, &r) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	print_message("# live capture: %.2f s, %llu stream bytes, %llu page records, %llu data pages, %llu passes, "
	              "downtime %.0f ms\n",
	              r->seconds, (unsigned long long)r->stream_bytes, (unsigned long long)r->page_records,
	              (unsigned long long)r->data_pages, (unsigned long long)r->passes, r->downtime_ms);
	assert_int_equal(r->was_running, 1);
	assert_string_equal(r->final_state, "running");
	assert_true(r->passes >= 2);                  // iterative: QEMU synced dirty pages again
	assert_true(r->page_records > r->data_pages); // pages were sent more than once
	assert_true(r->total_pages >= (256ull << 20) / 4096);
	assert_true(exists(path));
	assert_false(exists(path + ".cltmem.part"));
	cloudlet_capture_result_free(r);

	// The source went on running after the capture.
	assert_int_equal(domain_state(), VIR_DOMAIN_RUNNING);
	assert_counting();
	int after = counter();

	// Our save image describes itself, and holds one version of every page.
	cloudlet_snapshot_info *info = nullptr;
	assert_int_equal(cloudlet_snapshot_inspect(&info, ctx, path.c_str(), nullptr), CLOUDLET_OK);
	assert_string_equal(info->format, "libvirt-save");
	assert_int_equal(info->was_running, 1);
	assert_string_equal(info->domain_name, th_guest_domain_name(guest));
	assert_int_equal(info->page_records, info->total_pages);
	assert_int_equal(info->ram_sections, 3);
	cloudlet_snapshot_info_free(info);

	// Bring the image back in place of the source.
	assert_int_equal(th_guest_poweroff(guest), 0);
	if (th_guest_restore(guest, path.c_str()) != 0)
		fail_msg("%s", th_error());
	int restored = counter();
	if (restored < before || restored > after)
		fail_msg("restored counter %d is outside [%d, %d] (before capture, after it on the source)", restored,
		         before, after);
	assert_fingerprint();
}

// Collects a capture's pages, paced like a WAN link (~40 MB/s of page
// data) so that QEMU makes many passes while the guest dirties memory.
// The capture's own corrections (virt/page_ledger.h) come last, as one
// more version of their pages.
class PacedSink : public StreamSink {
public:
	void on_ram_blocks(const StreamInfo &i) override {
		blocks = i.blocks;
		mem.assign(i.total_pages * 4096, 0);
	}
	void on_page(uint32_t, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t) override {
		if (data)
			memcpy(&mem[linear * 4096], data, 4096);
		else
			memset(&mem[linear * 4096], fill, 4096);
		if (data && ++data_pages % 256 == 0)
			usleep(25000);
	}
	std::vector<RamBlock> blocks;
	std::vector<uint8_t> mem;
	uint64_t data_pages = 0;
};

static void test_live_capture_matches_paused_memory(void **) {
	cloudlet::ops::Context octx(cloudlet::ops::resolve_settings({}), cloudlet::Logger());
	PacedSink sink;
	cloudlet::virt::MigrationCaptureOptions co;
	co.live = true;
	cloudlet::Progress progress;
	cloudlet::virt::MigrationCapture res;
	try {
		auto conn = octx.connection();
		cloudlet::virt::DomainPtr dom = cloudlet::virt::lookup_domain(*conn, th_guest_domain_name(guest));
		res = cloudlet::virt::capture_migration(dom.get(), true, sink, co, progress, octx.log());
	} catch (const std::exception &e) {
		fail_msg("live capture: %s", e.what());
	}
	print_message("# paced live capture: %.2f s, %llu passes; checked against the paused VM in %.3f s: %llu pages "
	              "QEMU had not sent in their last version\n",
	              res.seconds, (unsigned long long)res.passes, res.check_seconds,
	              (unsigned long long)res.corrected_pages);
	assert_true(res.checked); // a TCG guest, read as root: the check ran
	assert_true(res.passes >= 3);
	assert_int_equal(domain_state(), VIR_DOMAIN_PAUSED);

	// QEMU's own reading of the paused guest's RAM, into a folder QEMU's
	// user may write.
	char dir[] = "/tmp/cltest-pmem-XXXXXX";
	assert_non_null(mkdtemp(dir));
	chmod(dir, 0777);
	std::string dump = std::string(dir) + "/ram";
	const RamBlock &ram = sink.blocks.at(0);
	assert_string_equal(ram.name.c_str(), "pc.ram");
	virConnectPtr c = virConnectOpen("qemu:///system");
	assert_non_null(c);
	virDomainPtr d = virDomainLookupByName(c, th_guest_domain_name(guest));
	assert_non_null(d);
	std::string cmd = "{\"execute\":\"pmemsave\",\"arguments\":{\"val\":0,\"size\":" + std::to_string(ram.length) +
	                  ",\"filename\":\"" + dump + "\"}}";
	char *reply = nullptr;
	int rc = virDomainQemuMonitorCommand(d, cmd.c_str(), &reply, 0);
	free(reply);
	virDomainFree(d);
	virConnectClose(c);
	assert_int_equal(rc, 0);
	int fd = open(dump.c_str(), O_RDONLY);
	assert_true(fd >= 0);
	std::vector<uint8_t> page(4096);
	uint64_t differ = 0, first = UINT64_MAX;
	for (uint64_t i = 0; i < ram.pages(); i++) {
		assert_int_equal(pread(fd, page.data(), 4096, off_t(i * 4096)), 4096);
		if (memcmp(&sink.mem[(ram.first_page + i) * 4096], page.data(), 4096) != 0) {
			differ++;
			first = std::min(first, i);
		}
	}
	close(fd);
	unlink(dump.c_str());
	rmdir(dir);
	set_paused(false);
	assert_counting();
	if (differ)
		fail_msg("%llu pages of the capture differ from the paused guest's RAM (first: page %llu)",
		         (unsigned long long)differ, (unsigned long long)first);
}

static void restore_paused_and_resume(const std::string &path) {
	virConnectPtr c = virConnectOpen("qemu:///system");
	assert_non_null(c);
	if (virDomainRestore(c, path.c_str()) != 0)
		fail_msg("virDomainRestore(%s) failed", path.c_str());
	virConnectClose(c);
	assert_int_equal(domain_state(), VIR_DOMAIN_PAUSED); // written paused, restores paused
	set_paused(false);
	if (th_guest_adopt(guest) != 0)
		fail_msg("%s", th_error());
}

static void test_paused_capture_memory_image_and_stop(void **) {
	std::string dir = th_guest_workdir(guest);
	std::string save = dir + "/paused.img", mem = dir + "/stopped.cltmem", rewritten = dir + "/rewritten.img";

	// A paused domain stays paused (QEMU: "postmigrate"), and a second
	// capture is refused in plain words rather than by QEMU.
	set_paused(true);
	cloudlet_capture_options o = CLOUDLET_CAPTURE_OPTIONS_INIT;
	cloudlet_capture_result *r = nullptr;
	if (capture(save, &o, &r) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	assert_int_equal(r->was_running, 0);
	assert_string_equal(r->final_state, "paused");
	assert_int_equal(r->page_records, r->total_pages); // one pass: each page once
	cloudlet_capture_result_free(r);
	assert_int_equal(domain_state(), VIR_DOMAIN_PAUSED);
	assert_int_equal(capture(dir + "/again.img", &o, &r), CLOUDLET_E_BUSY);
	assert_non_null(strstr(cloudlet_last_error_message(), "resume it first"));
	assert_int_equal(domain_state(), VIR_DOMAIN_PAUSED);

	assert_int_equal(th_guest_poweroff(guest), 0);
	restore_paused_and_resume(save);
	assert_fingerprint();

	// Running, not live, into our memory image, and shut off afterwards.
	o.format = CLOUDLET_CAPTURE_MEMORY_IMAGE;
	o.stop = 1;
	if (capture(mem, &o, &r) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	assert_int_equal(r->was_running, 1);
	assert_string_equal(r->final_state, "shut off");
	uint64_t data_pages = r->data_pages;
	cloudlet_capture_result_free(r);
	assert_int_equal(domain_state(), VIR_DOMAIN_SHUTOFF);

	// The memory image is complete: a save image written from it (with the
	// domain XML of the earlier one) restores the guest.
	ImageFile file(mem);
	assert_int_equal(file.data_pages(), data_pages);
	assert_true(file.stream_info().total_pages >= (256ull << 20) / 4096);
	int in = open(save.c_str(), O_RDONLY | O_CLOEXEC);
	assert_true(in >= 0);
	FdSource src(in, save);
	Reader rd(src, save);
	SaveImageHeader h = read_save_header(rd);
	close(in);
	int out = open(rewritten.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(out >= 0);
	{
		FdSink sink(out, rewritten);
		auto head = encode_save_header(h.domain_xml, "", false);
		sink.write(head.data(), head.size());
		write_stream(sink, file);
		sink.flush();
	}
	close(out);
	assert_int_equal(th_guest_poweroff(guest), 0);
	restore_paused_and_resume(rewritten);
	assert_fingerprint();
}

static const char *cli_path;

static std::string run_cli(const std::string &args, int *status) {
	std::string cmd = std::string(cli_path) + " " + args + " 2>&1";
	FILE *p = popen(cmd.c_str(), "r");
	assert_non_null(p);
	std::string out;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, p)) > 0)
		out.append(buf, n);
	int st = pclose(p);
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return out;
}

// The command-line tool over the same call: JSON out, the domain running on.
static void test_cli_capture(void **) {
	std::string path = std::string(th_guest_workdir(guest)) + "/cli.img";
	std::string name = th_guest_domain_name(guest);
	int status = 0;
	std::string out = run_cli("snapshot capture --live --json " + name + " " + path, &status);
	if (status != 0)
		fail_msg("cloudlet snapshot capture failed (%d): %s", status, out.c_str());
	json_object *j = json_tokener_parse(out.c_str());
	assert_non_null(j);
	json_object *dom = nullptr, *v = nullptr;
	assert_true(json_object_object_get_ex(j, "domain", &dom));
	assert_true(json_object_object_get_ex(dom, "final_state", &v));
	assert_string_equal(json_object_get_string(v), "running");
	assert_true(json_object_object_get_ex(j, "passes", &v));
	assert_true(json_object_get_int64(v) >= 1);
	json_object_put(j);
	assert_true(exists(path));
	assert_counting();

	out = run_cli("snapshot capture " + name + "-missing " + path + ".2", &status);
	assert_int_equal(status, 1);
	assert_non_null(strstr(out.c_str(), "no domain named"));
	out = run_cli("snapshot capture --format tar " + name + " " + path + ".3", &status);
	assert_int_equal(status, 2);
	assert_false(exists(path + ".3"));
	assert_counting();
}

int main(int argc, char **argv) {
	cli_path = argc > 1 ? argv[1] : "cloudlet";
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refusals_leave_domain_running),
	    cmocka_unit_test(test_live_capture_of_dirtying_guest),
	    cmocka_unit_test(test_live_capture_matches_paused_memory),
	    cmocka_unit_test(test_paused_capture_memory_image_and_stop),
	    cmocka_unit_test(test_cli_capture),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
