// Overlay creation on the real guest: a base is made, an instance resumed
// and customised (new random data, a copy of it, a copy of busybox whose
// pages the base memory holds, zeros, compressible text, disk writes that
// are new and disk writes that copy base disk content), then the overlay is
// made while the instance keeps its state and runs on. Checked: every dedup
// category is used where the workload puts it, the counts add up to the
// chunk totals, `overlay info` reads back the same counts from the file,
// the file is far smaller than the launch VM, and damage is refused.
#include "harness.h"

#include <cloudlet.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

extern "C" {
#include <cmocka.h>
}

#include "itest.h"

static th_guest *guest, *launch;
static cloudlet_ctx *ctx;
static std::string store_dir, work, launch_name;
static const char *cli_path;

static int setup(void **) {
	assert_int_equal(th_setup(), 0);
	if (th_guest_start(&guest, "ovlbase", nullptr) != 0)
		fail_msg("%s", th_error());
	store_dir = "/var/lib/cloudlet-test/ovl-store-" + std::to_string(getpid());
	work = "/var/lib/cloudlet-test/ovl-work-" + std::to_string(getpid());
	mkdir(work.c_str(), 0755);
	cloudlet_ctx_options co = CLOUDLET_CTX_OPTIONS_INIT;
	co.store_dir = store_dir.c_str();
	assert_int_equal(cloudlet_ctx_new(&ctx, &co), CLOUDLET_OK);
	check(guest, "dd if=/dev/urandom of=/dev/vda bs=65536 count=16 2>/dev/null && sync");
	cloudlet_base_options bo = CLOUDLET_BASE_OPTIONS_INIT;
	bo.name = "ovlbase";
	bo.stop = 1;
	cloudlet_base_info *b = nullptr;
	if (cloudlet_base_create(&b, ctx, th_guest_domain_name(guest), &bo) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	cloudlet_base_info_free(b);
	th_guest_poweroff(guest);

	launch_name = "cltest-" + std::to_string(getpid()) + "-launch";
	cloudlet_resume_options ro = CLOUDLET_RESUME_OPTIONS_INIT;
	ro.name = launch_name.c_str();
	cloudlet_instance_info *inst = nullptr;
	if (cloudlet_base_resume(&inst, ctx, "ovlbase", &ro) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	cloudlet_instance_info_free(inst);
	if (th_guest_attach_domain(&launch, launch_name.c_str(), nullptr, nullptr) != 0)
		fail_msg("%s", th_error());
	// The customisation.
	check(launch, "dd if=/dev/urandom of=/ram/new bs=1M count=8 2>/dev/null && cp /ram/new /ram/new2 && "
	              "cp /bin/busybox /ram/bb && dd if=/dev/zero of=/ram/z bs=1M count=4 2>/dev/null && "
	              "yes 'the quick brown fox jumps over the lazy dog' | head -c 4000000 > /ram/text");
	check(launch, "dd if=/dev/urandom of=/dev/vda bs=65536 count=16 seek=32 2>/dev/null && "
	              "dd if=/dev/vda of=/dev/vda bs=65536 count=4 skip=0 seek=128 2>/dev/null && sync");
	check(launch, "(i=0; while :; do i=$((i+1)); echo $i > /ram/counter.t; mv /ram/counter.t /ram/counter; sleep 0.1; done) >/dev/null 2>&1 & sleep 1");
	return 0;
}

static int teardown(void **) {
	cloudlet_ctx_free(ctx);
	th_guest_destroy(launch);
	th_guest_destroy(guest);
	std::string cmd = "rm -rf '" + store_dir + "' '" + work + "'";
	return system(cmd.c_str()) == 0 ? 0 : 0;
}

static void assert_counts_add_up(const cloudlet_overlay_info *i) {
	uint64_t m = 0, d = 0;
	for (int k = 0; k < CLOUDLET_CHUNK_KINDS; k++) {
		m += i->memory[k];
		d += i->disk[k];
	}
	assert_int_equal(m, i->memory_chunks);
	assert_int_equal(d, i->disk_chunks);
}

static void test_create_and_info(void **) {
	std::string path = work + "/launch.ovl";
	cloudlet_overlay_info *o = nullptr;
	if (cloudlet_overlay_create(&o, ctx, launch_name.c_str(), path.c_str(), nullptr) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	print_message("# overlay: %llu bytes (payload %llu -> %llu) in %.2f s (capture+dedup %.2f s, disks %.2f s)\n",
	              (unsigned long long)o->file_bytes, (unsigned long long)o->payload_bytes,
	              (unsigned long long)o->stored_bytes, o->total_seconds, o->capture_seconds, o->disk_seconds);
	for (int space = 0; space < 2; space++) {
		const uint64_t *n = space ? o->disk : o->memory;
		print_message("# %s: unchanged %llu zero %llu base-mem %llu base-disk %llu self %llu data %llu delta %llu\n",
		              space ? "disk" : "memory", (unsigned long long)n[0], (unsigned long long)n[1],
		              (unsigned long long)n[2], (unsigned long long)n[3], (unsigned long long)n[4],
		              (unsigned long long)n[5], (unsigned long long)n[6]);
	}
	assert_counts_add_up(o);
	// Where the workload put them.
	assert_true(o->memory[CLOUDLET_CHUNK_DATA] >= 2048 * 9 / 10);       // 8 MiB of random data, once
	assert_true(o->memory[CLOUDLET_CHUNK_SELF] >= 2048 * 9 / 10);       // its copy
	assert_true(o->memory[CLOUDLET_CHUNK_BASE_MEMORY] > 100);           // busybox, already in the base's page cache
	assert_true(o->memory[CLOUDLET_CHUNK_ZERO] > 0);
	// 1 MiB of new random data written at 2 MiB: stored, or a reference to
	// the same bytes stored earlier from the launch memory's page cache.
	assert_true(o->disk[CLOUDLET_CHUNK_DATA] + o->disk[CLOUDLET_CHUNK_SELF] >= 256);
	assert_true(o->disk[CLOUDLET_CHUNK_DATA] > 0);
	// 256 KiB copied from the base's own disk data: found in the base (its
	// memory's page cache holds it too, and memory is looked up first).
	assert_true(o->disk[CLOUDLET_CHUNK_BASE_MEMORY] + o->disk[CLOUDLET_CHUNK_BASE_DISK] >= 64);
	uint64_t launch_bytes = (o->memory_chunks + o->disk_chunks) * 4096;
	assert_true(o->file_bytes < launch_bytes / 8);
	assert_true(o->file_bytes < o->payload_bytes + (2u << 20));
	assert_string_equal(o->domain, launch_name.c_str());

	// The instance is running on, with its state.
	int c1 = atoi(check(launch, "cat /ram/counter").c_str());
	check(launch, "sleep 1");
	assert_true(atoi(check(launch, "cat /ram/counter").c_str()) > c1);

	// Reading the file gives the same counts.
	cloudlet_overlay_info *r = nullptr;
	if (cloudlet_overlay_inspect(&r, ctx, path.c_str(), nullptr) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	assert_counts_add_up(r);
	for (int k = 0; k < CLOUDLET_CHUNK_KINDS; k++) {
		assert_int_equal(r->memory[k], o->memory[k]);
		assert_int_equal(r->disk[k], o->disk[k]);
	}
	assert_int_equal(r->file_bytes, o->file_bytes);
	cloudlet_overlay_info_free(r);

	// And through the CLI.
	std::string cmd = std::string(cli_path) + " overlay info --json " + path;
	int status = -1;
	std::string out = run_output(cmd, &status);
	assert_int_equal(status, 0);
	json_object *j = json_tokener_parse(out.c_str()), *mem = nullptr, *data = nullptr;
	assert_non_null(j);
	assert_true(json_object_object_get_ex(j, "memory", &mem) && json_object_object_get_ex(mem, "data", &data));
	assert_int_equal((uint64_t)json_object_get_int64(data), o->memory[CLOUDLET_CHUNK_DATA]);
	json_object_put(j);

	// Damage is refused, naming the problem.
	struct stat st;
	assert_int_equal(stat(path.c_str(), &st), 0);
	assert_int_equal(truncate(path.c_str(), st.st_size - 5), 0);
	assert_int_equal(cloudlet_overlay_inspect(&r, ctx, path.c_str(), nullptr), CLOUDLET_E_CORRUPT);
	print_message("# truncated: %s\n", cloudlet_last_error_message());
	cloudlet_overlay_info_free(o);
}

static void test_lzma_and_stop(void **) {
	std::string path = work + "/launch-xz.ovl";
	cloudlet_overlay_options oo = CLOUDLET_OVERLAY_OPTIONS_INIT;
	oo.codec = "lzma";
	oo.stop = 1;
	cloudlet_overlay_info *o = nullptr;
	if (cloudlet_overlay_create(&o, ctx, launch_name.c_str(), path.c_str(), &oo) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	print_message("# lzma overlay: %llu bytes in %.2f s\n", (unsigned long long)o->file_bytes, o->total_seconds);
	assert_string_equal(o->codec, "lzma");
	assert_counts_add_up(o);
	assert_true(o->stored_bytes < o->payload_bytes);
	cloudlet_overlay_info_free(o);
	virConnectPtr c = virConnectOpen("qemu:///system");
	virDomainPtr d = virDomainLookupByName(c, launch_name.c_str());
	assert_null(d); // shut off (transient: gone)
	virConnectClose(c);
	th_guest_poweroff(launch);
}

int main(int argc, char **argv) {
	cli_path = argc > 1 ? argv[1] : "cloudlet";
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_and_info),
	    cmocka_unit_test(test_lzma_and_stop),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
