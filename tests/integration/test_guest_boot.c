/* Boots the project's test guest through the real libvirtd and QEMU and
 * talks to it: the foundation every later integration test stands on. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <cmocka.h>

static th_guest *guest;

static int setup(void **state) {
	(void)state;
	if (th_setup() != 0) {
		fprintf(stderr, "harness setup failed: %s\n", th_error());
		return -1;
	}
	if (th_guest_start(&guest, "boot", NULL) != 0) {
		fprintf(stderr, "guest did not start: %s\n", th_error());
		return -1;
	}
	fprintf(stderr, "# guest %s up under virt type '%s'\n", th_guest_domain_name(guest), th_virt_type());
	return 0;
}

static int teardown(void **state) {
	(void)state;
	th_guest_destroy(guest);
	return 0;
}

static char *check(const char *cmd) {
	char *out = th_guest_check(guest, cmd, 60000);
	if (!out)
		fail_msg("%s", th_error());
	return out;
}

static void test_kernel_is_the_debian_one(void **state) {
	(void)state;
	char *release = check("uname -r");
	/* The guest's kernel is the one build-guest.sh unpacked, not the host's. */
	char version_file[4096];
	snprintf(version_file, sizeof version_file, "%s/VERSION", th_guest_dir());
	FILE *f = fopen(version_file, "r");
	assert_non_null(f);
	char line[512] = "";
	assert_non_null(fgets(line, sizeof line, f));
	fclose(f);
	assert_non_null(strstr(line, release));
	assert_non_null(strstr(release, "-amd64"));
	free(release);
}

static void test_devices_really_exist(void **state) {
	(void)state;
	/* A missing /dev node would silently become a file on write. */
	char *out = check("test -b /dev/vda && echo block");
	assert_string_equal(out, "block");
	free(out);
	out = check("cat /sys/block/vda/size");
	assert_string_equal(out, "131072"); /* 64 MiB in 512-byte sectors */
	free(out);
}

static void test_exit_status_and_output(void **state) {
	(void)state;
	char *out = NULL;
	int status = -1;
	assert_int_equal(th_guest_run(guest, "echo to-stderr >&2; exit_code=7; (exit $exit_code)", 30000, &out, &status), 0);
	assert_int_equal(status, 7);
	assert_string_equal(out, "to-stderr\n");
	free(out);
	/* Multi-line output and commands spanning lines come back intact. */
	assert_int_equal(th_guest_run(guest, "for i in 1 2 3; do\n echo line$i\ndone", 30000, &out, &status), 0);
	assert_int_equal(status, 0);
	assert_string_equal(out, "line1\nline2\nline3\n");
	free(out);
}

static void test_disk_and_ram_checksums(void **state) {
	(void)state;
	/* Write a known pattern to the RAM disk and the block device; read both
	 * back and compare checksums computed in the guest. */
	char *a = check("dd if=/dev/urandom of=/ram/blob bs=4096 count=256 2>/dev/null && md5sum </ram/blob");
	char *b = check("dd if=/ram/blob of=/dev/vda bs=4096 conv=fsync 2>/dev/null && "
	                "dd if=/dev/vda bs=4096 count=256 2>/dev/null | md5sum");
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), 35); /* "<32 hex>  -" */
	free(a);
	free(b);
}

int main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kernel_is_the_debian_one),
	    cmocka_unit_test(test_devices_really_exist),
	    cmocka_unit_test(test_exit_status_and_output),
	    cmocka_unit_test(test_disk_and_ram_checksums),
	};
	return cmocka_run_group_tests_name("guest_boot", tests, setup, teardown);
}
