/* cloudlet_doctor() against the real libvirtd: versions, a real boot probe
 * under each virt type (with the test guest's kernel), CPU model, ACPI. */
#include "harness.h"

#include <cloudlet.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const cloudlet_virt_report *find(const cloudlet_host_report *r, const char *vt) {
	for (size_t i = 0; i < r->virt_count; i++)
		if (strcmp(r->virt[i].virt_type, vt) == 0)
			return &r->virt[i];
	return NULL;
}

static int phases;
static int count_phases(const char *phase, uint64_t done, uint64_t total, void *ud) {
	(void)phase;
	(void)done;
	(void)total;
	(*(int *)ud)++;
	return 0;
}

static void test_doctor_report(void **state) {
	(void)state;
	assert_int_equal(th_setup(), 0);
	const char *gdir = th_guest_dir();
	assert_non_null(gdir);
	char kernel[4096];
	snprintf(kernel, sizeof kernel, "%s/vmlinuz", gdir);

	cloudlet_ctx *ctx = NULL;
	assert_int_equal(cloudlet_ctx_new(&ctx, NULL), CLOUDLET_OK);
	cloudlet_doctor_options o = CLOUDLET_DOCTOR_OPTIONS_INIT;
	o.probe_kernel = kernel;
	o.progress = count_phases;
	o.progress_userdata = &phases;
	cloudlet_host_report *r = NULL;
	cloudlet_status st = cloudlet_doctor(&r, ctx, &o);
	if (st != CLOUDLET_OK)
		fail_msg("doctor: %s", cloudlet_last_error_message());
	assert_true(phases >= 3);
	assert_int_equal(r->version, CLOUDLET_HOST_REPORT_VERSION);
	assert_true(strncmp(r->libvirt_version, "9.", 2) == 0 || atoi(r->libvirt_version) >= 9);
	assert_true(strlen(r->qemu_version) > 0);
	assert_string_equal(r->cpu_model, "core2duo");
	assert_string_equal(r->probe_kernel, kernel);
	assert_int_equal(r->virt_count, 2);
	/* Early start: the verdict agrees with the sysctl QEMU 7.2 depends on
	 * (scripts/setup-host allows it; libvirt runs QEMU unprivileged here). */
	{
		FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "r");
		int v = f ? fgetc(f) : -1;
		if (f)
			fclose(f);
		fprintf(stderr, "# early start: %d (%s)\n", r->early_start, r->early_start_detail);
		assert_int_equal(r->early_start, v == '1' ? CLOUDLET_YES : CLOUDLET_NO);
		assert_non_null(strstr(r->early_start_detail, "userfaultfd"));
	}

	const cloudlet_virt_report *tcg = find(r, "qemu");
	const cloudlet_virt_report *kvm = find(r, "kvm");
	assert_non_null(tcg);
	assert_non_null(kvm);
	fprintf(stderr, "# kvm: usable=%d (%s)\n# qemu: usable=%d (%s)\n", kvm->usable, kvm->usable_detail,
	        tcg->usable, tcg->usable_detail);
	/* TCG runs everywhere QEMU does; the probe really booted a kernel. */
	assert_int_equal(tcg->offered, CLOUDLET_YES);
	assert_int_equal(tcg->usable, CLOUDLET_YES);
	assert_true(tcg->probe_seconds > 0);
	assert_non_null(strstr(tcg->usable_detail, "booted"));
	assert_int_equal(tcg->cpu_model_usable, CLOUDLET_YES);
	/* KVM gets a verdict either way, and a "no" always says why. */
	assert_int_not_equal(kvm->usable, CLOUDLET_UNKNOWN);
	if (kvm->usable == CLOUDLET_NO)
		assert_true(strlen(kvm->usable_detail) > 20);
	assert_string_equal(r->preferred_virt_type, kvm->usable == CLOUDLET_YES ? "kvm" : "qemu");
	/* The test guests themselves use what the doctor prefers. */
	assert_string_equal(th_virt_type(), r->preferred_virt_type);
	assert_int_equal(r->acpi_hotplug, CLOUDLET_YES);
	assert_true(r->store_total_bytes > 0);
	cloudlet_host_report_free(r);
	cloudlet_ctx_free(ctx);
}

static void test_missing_probe_kernel(void **state) {
	(void)state;
	cloudlet_ctx *ctx = NULL;
	assert_int_equal(cloudlet_ctx_new(&ctx, NULL), CLOUDLET_OK);
	cloudlet_doctor_options o = CLOUDLET_DOCTOR_OPTIONS_INIT;
	o.probe_kernel = "/nonexistent/vmlinuz";
	cloudlet_host_report *r = NULL;
	assert_int_equal(cloudlet_doctor(&r, ctx, &o), CLOUDLET_E_NOT_FOUND);
	assert_non_null(strstr(cloudlet_last_error_message(), "/nonexistent/vmlinuz"));
	assert_null(r);

	/* Without a boot probe, usability is not claimed either way. */
	o.boot_probe = 0;
	o.probe_kernel = NULL;
	assert_int_equal(cloudlet_doctor(&r, ctx, &o), CLOUDLET_OK);
	const cloudlet_virt_report *tcg = find(r, "qemu");
	assert_int_equal(tcg->usable, CLOUDLET_UNKNOWN);
	assert_non_null(strstr(tcg->usable_detail, "not proven"));
	assert_string_equal(r->preferred_virt_type, "");
	cloudlet_host_report_free(r);
	cloudlet_ctx_free(ctx);
}

int main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_doctor_report),
	    cmocka_unit_test(test_missing_probe_kernel),
	};
	return cmocka_run_group_tests_name("doctor", tests, NULL, NULL);
}
