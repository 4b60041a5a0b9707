/* The public ABI's contract, as a C99 caller sees it: argument checks,
 * status codes and messages, struct versioning, thread-local errors,
 * cancellation. No libvirt daemon is needed here. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <cloudlet.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void assert_message_contains(const char *needle) {
	const char *m = cloudlet_last_error_message();
	if (!strstr(m, needle))
		fail_msg("error message '%s' does not contain '%s'", m, needle);
}

static void test_version(void **state) {
	(void)state;
	int ma = -1, mi = -1, pa = -1;
	assert_int_equal(cloudlet_version(&ma, &mi, &pa), CLOUDLET_OK);
	assert_int_equal(ma, CLOUDLET_VERSION_MAJOR);
	assert_int_equal(mi, CLOUDLET_VERSION_MINOR);
	assert_int_equal(pa, CLOUDLET_VERSION_PATCH);
	assert_int_equal(cloudlet_version(NULL, NULL, NULL), CLOUDLET_OK);
	char expect[32];
	snprintf(expect, sizeof expect, "%d.%d.%d", ma, mi, pa);
	assert_string_equal(cloudlet_version_string(), expect);
}

static void test_strerror(void **state) {
	(void)state;
	static const cloudlet_status all[] = {
	    CLOUDLET_OK, CLOUDLET_E_INVALID_ARG, CLOUDLET_E_NOMEM, CLOUDLET_E_VERSION, CLOUDLET_E_IO,
	    CLOUDLET_E_LIBVIRT, CLOUDLET_E_NOT_FOUND, CLOUDLET_E_EXISTS, CLOUDLET_E_CORRUPT,
	    CLOUDLET_E_UNSUPPORTED, CLOUDLET_E_HOST, CLOUDLET_E_CANCELLED, CLOUDLET_E_TIMEOUT,
	    CLOUDLET_E_PERMISSION, CLOUDLET_E_BUSY, CLOUDLET_E_INTERNAL};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		const char *s = cloudlet_strerror(all[i]);
		assert_non_null(s);
		assert_true(strlen(s) > 0);
		assert_string_not_equal(s, "unknown status");
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(s, cloudlet_strerror(all[j]));
	}
	assert_string_equal(cloudlet_strerror((cloudlet_status)12345), "unknown status");
}

static void test_null_arguments(void **state) {
	(void)state;
	assert_int_equal(cloudlet_ctx_new(NULL, NULL), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_last_error_status(), CLOUDLET_E_INVALID_ARG);
	assert_message_contains("cloudlet_ctx_new");
	assert_message_contains("out is NULL");

	cloudlet_host_report *r = (cloudlet_host_report *)0x1;
	assert_int_equal(cloudlet_doctor(&r, NULL, NULL), CLOUDLET_E_INVALID_ARG);
	assert_null(r); /* out-parameters are cleared on failure */
	assert_message_contains("ctx is NULL");

	assert_int_equal(cloudlet_doctor(NULL, NULL, NULL), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_ctx_options_init(NULL, CLOUDLET_CTX_OPTIONS_VERSION), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_doctor_options_init(NULL, CLOUDLET_DOCTOR_OPTIONS_VERSION), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_ctx_settings(NULL, NULL, NULL, NULL, NULL), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_cancel_new(NULL), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_cancel_trigger(NULL), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_cancel_is_triggered(NULL), 0);

	/* Capture and base calls check their arguments before any work. */
	cloudlet_ctx *ctx = NULL;
	assert_int_equal(cloudlet_ctx_new(&ctx, NULL), CLOUDLET_OK);
	cloudlet_capture_result *cr = (cloudlet_capture_result *)0x1;
	assert_int_equal(cloudlet_snapshot_capture(&cr, ctx, NULL, "/tmp/x", NULL), CLOUDLET_E_INVALID_ARG);
	assert_null(cr);
	assert_message_contains("domain is NULL");
	assert_int_equal(cloudlet_snapshot_capture(NULL, ctx, "d", "", NULL), CLOUDLET_E_INVALID_ARG);
	assert_message_contains("path is NULL or empty");
	cloudlet_capture_options co = CLOUDLET_CAPTURE_OPTIONS_INIT;
	co.format = (cloudlet_capture_format)7;
	assert_int_equal(cloudlet_snapshot_capture(NULL, ctx, "d", "/tmp/x", &co), CLOUDLET_E_INVALID_ARG);
	assert_message_contains("capture format");
	cloudlet_base_info *bi = (cloudlet_base_info *)0x1;
	assert_int_equal(cloudlet_base_create(&bi, ctx, NULL, NULL), CLOUDLET_E_INVALID_ARG);
	assert_null(bi);
	assert_int_equal(cloudlet_base_create(NULL, ctx, "d", NULL), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_base_show(&bi, NULL, "b", NULL), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_base_list_get(NULL, ctx), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_base_remove(ctx, ""), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_base_export(ctx, "b", NULL, NULL), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_base_import(NULL, ctx, NULL, NULL), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_base_package_inspect(NULL, ctx, "p"), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_handoff_token_check(NULL), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_handoff_token_check("/nonexistent/token"), CLOUDLET_E_NOT_FOUND);
	assert_int_equal(cloudlet_base_package_inspect(&bi, ctx, NULL), CLOUDLET_E_INVALID_ARG);
	assert_null(bi);
	cloudlet_resume_options ro = CLOUDLET_RESUME_OPTIONS_INIT;
	ro.virt_type = "xen";
	assert_int_equal(cloudlet_base_resume(NULL, ctx, "b", &ro), CLOUDLET_E_INVALID_ARG);
	assert_message_contains("virt_type");
	cloudlet_overlay_info *oi = (cloudlet_overlay_info *)0x1;
	assert_int_equal(cloudlet_overlay_inspect(&oi, ctx, NULL, NULL), CLOUDLET_E_INVALID_ARG);
	assert_null(oi);
	assert_int_equal(cloudlet_overlay_inspect(NULL, ctx, "x", NULL), CLOUDLET_E_INVALID_ARG);
	cloudlet_overlay_options oo = CLOUDLET_OVERLAY_OPTIONS_INIT;
	oo.codec = "gzip";
	assert_int_equal(cloudlet_overlay_create(NULL, ctx, "d", "/tmp/x", &oo), CLOUDLET_E_INVALID_ARG);
	assert_message_contains("codec");
	oo.codec = NULL;
	oo.level = 99;
	assert_int_equal(cloudlet_overlay_create(NULL, ctx, "d", "/tmp/x", &oo), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_overlay_create(NULL, ctx, NULL, "/tmp/x", NULL), CLOUDLET_E_INVALID_ARG);
	cloudlet_ctx_free(ctx);

	/* Free functions accept NULL. */
	cloudlet_overlay_info_free(NULL);
	cloudlet_capture_result_free(NULL);
	cloudlet_base_info_free(NULL);
	cloudlet_base_list_free(NULL);
	cloudlet_instance_info_free(NULL);
	cloudlet_ctx_free(NULL);
	cloudlet_host_report_free(NULL);
	cloudlet_cancel_free(NULL);
}

static void test_success_clears_message(void **state) {
	(void)state;
	assert_int_equal(cloudlet_ctx_new(NULL, NULL), CLOUDLET_E_INVALID_ARG);
	assert_true(strlen(cloudlet_last_error_message()) > 0);
	cloudlet_ctx *ctx = NULL;
	assert_int_equal(cloudlet_ctx_new(&ctx, NULL), CLOUDLET_OK);
	assert_string_equal(cloudlet_last_error_message(), "");
	assert_int_equal(cloudlet_last_error_status(), CLOUDLET_OK);
	cloudlet_ctx_free(ctx);
}

static void test_options_versioning(void **state) {
	(void)state;
	cloudlet_ctx_options o;
	memset(&o, 0xab, sizeof o);
	assert_int_equal(cloudlet_ctx_options_init(&o, CLOUDLET_CTX_OPTIONS_VERSION), CLOUDLET_OK);
	assert_int_equal(o.version, CLOUDLET_CTX_OPTIONS_VERSION);
	assert_null(o.libvirt_uri);
	assert_null(o.store_dir);
	assert_int_equal(o.worker_threads, 0);
	assert_int_equal(o.log_level, CLOUDLET_LOG_WARN);

	/* The macro and the function agree. */
	cloudlet_ctx_options m = CLOUDLET_CTX_OPTIONS_INIT;
	assert_int_equal(m.version, o.version);
	assert_int_equal(m.log_level, o.log_level);

	/* A version from the future or an uninitialised struct is refused. */
	assert_int_equal(cloudlet_ctx_options_init(&o, CLOUDLET_CTX_OPTIONS_VERSION + 1), CLOUDLET_E_VERSION);
	assert_int_equal(cloudlet_ctx_options_init(&o, 0), CLOUDLET_E_VERSION);
	cloudlet_ctx *ctx = (cloudlet_ctx *)0x1;
	cloudlet_ctx_options bad = CLOUDLET_CTX_OPTIONS_INIT;
	bad.version = 99;
	assert_int_equal(cloudlet_ctx_new(&ctx, &bad), CLOUDLET_E_VERSION);
	assert_null(ctx);
	assert_message_contains("version 99");
	bad.version = 0;
	assert_int_equal(cloudlet_ctx_new(&ctx, &bad), CLOUDLET_E_VERSION);

	cloudlet_doctor_options d;
	assert_int_equal(cloudlet_doctor_options_init(&d, CLOUDLET_DOCTOR_OPTIONS_VERSION), CLOUDLET_OK);
	assert_int_equal(d.boot_probe, 1);
	assert_null(d.probe_kernel);
	assert_int_equal(cloudlet_doctor_options_init(&d, 7), CLOUDLET_E_VERSION);

	/* Every options struct: macro and function agree; the future is refused. */
	cloudlet_capture_options c, cm = CLOUDLET_CAPTURE_OPTIONS_INIT;
	assert_int_equal(cloudlet_capture_options_init(&c, CLOUDLET_CAPTURE_OPTIONS_VERSION), CLOUDLET_OK);
	assert_int_equal(c.version, cm.version);
	assert_int_equal(c.live, 0);
	assert_int_equal(c.format, CLOUDLET_CAPTURE_SAVE_IMAGE);
	assert_int_equal(cloudlet_capture_options_init(&c, 2), CLOUDLET_E_VERSION);
	cloudlet_base_options b, bm = CLOUDLET_BASE_OPTIONS_INIT;
	assert_int_equal(cloudlet_base_options_init(&b, CLOUDLET_BASE_OPTIONS_VERSION), CLOUDLET_OK);
	assert_int_equal(b.version, bm.version);
	assert_null(b.name);
	assert_int_equal(cloudlet_base_options_init(&b, 2), CLOUDLET_E_VERSION);
	cloudlet_resume_options r, rm = CLOUDLET_RESUME_OPTIONS_INIT;
	assert_int_equal(cloudlet_resume_options_init(&r, CLOUDLET_RESUME_OPTIONS_VERSION), CLOUDLET_OK);
	assert_int_equal(r.version, rm.version);
	assert_null(r.virt_type);
	assert_int_equal(cloudlet_resume_options_init(&r, 0), CLOUDLET_E_VERSION);
	cloudlet_ctx *ctx2 = NULL;
	assert_int_equal(cloudlet_ctx_new(&ctx2, NULL), CLOUDLET_OK);
	b.version = 9;
	assert_int_equal(cloudlet_base_show(NULL, ctx2, "x", &b), CLOUDLET_E_INVALID_ARG); /* out first */
	cloudlet_base_info *info = NULL;
	assert_int_equal(cloudlet_base_show(&info, ctx2, "x", &b), CLOUDLET_E_VERSION);
	cloudlet_ctx_free(ctx2);
}

/* A caller built against an older header passes a smaller, older struct: the
 * library must neither write nor read past it (ASan watches the exact-size
 * heap blocks) and must give the newer fields their defaults. */
static void test_older_option_versions(void **state) {
	(void)state;
	const size_t v1 = offsetof(cloudlet_resume_options, uuid);
	unsigned char *buf = malloc(v1);
	assert_non_null(buf);
	assert_int_equal(cloudlet_resume_options_init((cloudlet_resume_options *)buf, 1), CLOUDLET_OK);
	cloudlet_resume_options head;
	memcpy(&head, buf, v1);
	assert_int_equal(head.version, 1);
	assert_null(head.name);
	char store[] = "/tmp/cloudlet-abi-XXXXXX";
	assert_non_null(mkdtemp(store));
	cloudlet_ctx_options co = CLOUDLET_CTX_OPTIONS_INIT;
	co.libvirt_uri = "nosuchdriver:///nowhere";
	co.store_dir = store;
	cloudlet_ctx *ctx = NULL;
	assert_int_equal(cloudlet_ctx_new(&ctx, &co), CLOUDLET_OK);
	cloudlet_instance_info *info = NULL;
	/* Accepted as version 1 (not CLOUDLET_E_VERSION): the base is looked up. */
	assert_int_equal(cloudlet_base_resume(&info, ctx, "nosuchbase", (cloudlet_resume_options *)buf),
	                 CLOUDLET_E_NOT_FOUND);
	free(buf);

	const size_t s1 = offsetof(cloudlet_synthesis_options, uuid);
	buf = malloc(s1);
	assert_non_null(buf);
	assert_int_equal(cloudlet_synthesis_options_init((cloudlet_synthesis_options *)buf, 1), CLOUDLET_OK);
	cloudlet_synthesis_info *si = NULL;
	assert_int_equal(cloudlet_synthesize(&si, ctx, "/nonexistent/overlay", (cloudlet_synthesis_options *)buf),
	                 CLOUDLET_E_NOT_FOUND);
	free(buf);

	const size_t h1 = offsetof(cloudlet_handoff_options, uuid);
	buf = malloc(h1);
	assert_non_null(buf);
	assert_int_equal(cloudlet_handoff_options_init((cloudlet_handoff_options *)buf, 1), CLOUDLET_OK);
	cloudlet_handoff_options hh;
	memcpy(&hh, buf, h1);
	assert_int_equal(hh.level, -1);
	free(buf);

	/* instance remove: names only, never paths. */
	assert_int_equal(cloudlet_instance_remove(ctx, "../etc"), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_instance_remove(ctx, ".."), CLOUDLET_E_INVALID_ARG);
	assert_int_equal(cloudlet_instance_remove(ctx, "nosuchinstance"), CLOUDLET_E_NOT_FOUND);
	assert_int_equal(cloudlet_instance_remove(NULL, "x"), CLOUDLET_E_INVALID_ARG);
	cloudlet_ctx_free(ctx);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", store);
	assert_int_equal(system(cmd), 0);
}

static void test_settings(void **state) {
	(void)state;
	cloudlet_ctx_options o = CLOUDLET_CTX_OPTIONS_INIT;
	o.libvirt_uri = "test:///default";
	o.store_dir = "/srv/cloudlet-store";
	o.worker_threads = 3;
	o.cpu_model = "Penryn";
	cloudlet_ctx *ctx = NULL;
	assert_int_equal(cloudlet_ctx_new(&ctx, &o), CLOUDLET_OK);
	const char *uri, *store, *cpu;
	unsigned workers;
	assert_int_equal(cloudlet_ctx_settings(&uri, &store, &cpu, &workers, ctx), CLOUDLET_OK);
	assert_string_equal(uri, "test:///default");
	assert_string_equal(store, "/srv/cloudlet-store");
	assert_string_equal(cpu, "Penryn");
	assert_int_equal(workers, 3);
	cloudlet_ctx_free(ctx);

	/* Defaults. */
	assert_int_equal(cloudlet_ctx_new(&ctx, NULL), CLOUDLET_OK);
	assert_int_equal(cloudlet_ctx_settings(NULL, NULL, &cpu, &workers, ctx), CLOUDLET_OK);
	assert_string_equal(cpu, "core2duo");
	assert_true(workers >= 1);
	cloudlet_ctx_free(ctx);
}

static void test_invalid_settings(void **state) {
	(void)state;
	cloudlet_ctx *ctx = NULL;
	cloudlet_ctx_options o = CLOUDLET_CTX_OPTIONS_INIT;
	o.cpu_model = "core2duo'/><evil";
	assert_int_equal(cloudlet_ctx_new(&ctx, &o), CLOUDLET_E_INVALID_ARG);
	assert_message_contains("invalid CPU model name");

	o = (cloudlet_ctx_options)CLOUDLET_CTX_OPTIONS_INIT;
	o.store_dir = "relative/store";
	assert_int_equal(cloudlet_ctx_new(&ctx, &o), CLOUDLET_E_INVALID_ARG);
	assert_message_contains("absolute path");

	o = (cloudlet_ctx_options)CLOUDLET_CTX_OPTIONS_INIT;
	o.log_level = (cloudlet_log_level)42;
	assert_int_equal(cloudlet_ctx_new(&ctx, &o), CLOUDLET_E_INVALID_ARG);

	o = (cloudlet_ctx_options)CLOUDLET_CTX_OPTIONS_INIT;
	o.worker_threads = 100000;
	assert_int_equal(cloudlet_ctx_new(&ctx, &o), CLOUDLET_E_INVALID_ARG);
	assert_null(ctx);
}

/* A context whose libvirt URI names no driver: any use of libvirt fails. */
static cloudlet_ctx *unreachable_ctx(void) {
	cloudlet_ctx_options o = CLOUDLET_CTX_OPTIONS_INIT;
	o.libvirt_uri = "nosuchdriver:///nowhere";
	cloudlet_ctx *ctx = NULL;
	assert_int_equal(cloudlet_ctx_new(&ctx, &o), CLOUDLET_OK);
	return ctx;
}

static void test_bad_uri_fails_on_use(void **state) {
	(void)state;
	/* Creating is lazy: nothing connects yet. */
	cloudlet_ctx *ctx = unreachable_ctx();
	cloudlet_doctor_options d = CLOUDLET_DOCTOR_OPTIONS_INIT;
	d.boot_probe = 0;
	cloudlet_host_report *r = NULL;
	assert_int_equal(cloudlet_doctor(&r, ctx, &d), CLOUDLET_E_LIBVIRT);
	assert_null(r);
	assert_message_contains("cloudlet_doctor");
	assert_message_contains("nosuchdriver:///nowhere");
	cloudlet_ctx_free(ctx);
}

/* --- thread-local errors ------------------------------------------------ */

struct thread_result {
	cloudlet_status status;
	char message[512];
};

static void *failing_thread(void *arg) {
	struct thread_result *r = arg;
	r->status = cloudlet_ctx_new(NULL, NULL);
	snprintf(r->message, sizeof r->message, "%s", cloudlet_last_error_message());
	return NULL;
}

static void *succeeding_thread(void *arg) {
	struct thread_result *r = arg;
	int ma;
	r->status = cloudlet_version(&ma, NULL, NULL);
	snprintf(r->message, sizeof r->message, "%s", cloudlet_last_error_message());
	return NULL;
}

static void test_error_is_thread_local(void **state) {
	(void)state;
	/* This thread fails with one message ... */
	cloudlet_ctx_options bad = CLOUDLET_CTX_OPTIONS_INIT;
	bad.version = 77;
	cloudlet_ctx *ctx = NULL;
	assert_int_equal(cloudlet_ctx_new(&ctx, &bad), CLOUDLET_E_VERSION);
	/* ... another fails with another, a third succeeds ... */
	pthread_t t1, t2;
	struct thread_result r1, r2;
	assert_int_equal(pthread_create(&t1, NULL, failing_thread, &r1), 0);
	assert_int_equal(pthread_create(&t2, NULL, succeeding_thread, &r2), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(r1.status, CLOUDLET_E_INVALID_ARG);
	assert_non_null(strstr(r1.message, "out is NULL"));
	assert_int_equal(r2.status, CLOUDLET_OK);
	assert_string_equal(r2.message, "");
	/* ... and this thread still has its own. */
	assert_int_equal(cloudlet_last_error_status(), CLOUDLET_E_VERSION);
	assert_message_contains("version 77");
}

/* --- cancellation and progress ------------------------------------------- */

static void test_cancel_handle(void **state) {
	(void)state;
	cloudlet_cancel *c = NULL;
	assert_int_equal(cloudlet_cancel_new(&c), CLOUDLET_OK);
	assert_int_equal(cloudlet_cancel_is_triggered(c), 0);
	assert_int_equal(cloudlet_cancel_trigger(c), CLOUDLET_OK);
	assert_int_equal(cloudlet_cancel_is_triggered(c), 1);

	/* A triggered handle stops a long operation at its first check point,
	 * before it touches libvirt. */
	cloudlet_ctx *ctx = unreachable_ctx();
	cloudlet_doctor_options d = CLOUDLET_DOCTOR_OPTIONS_INIT;
	d.cancel = c;
	cloudlet_host_report *r = NULL;
	assert_int_equal(cloudlet_doctor(&r, ctx, &d), CLOUDLET_E_CANCELLED);
	assert_null(r);
	assert_message_contains("cancelled");
	cloudlet_ctx_free(ctx);
	cloudlet_cancel_free(c);
}

static int progress_calls;
static char first_phase[64];

static int stop_at_once(const char *phase, uint64_t done, uint64_t total, void *userdata) {
	(void)done;
	(void)total;
	assert_ptr_equal(userdata, &progress_calls);
	if (progress_calls++ == 0)
		snprintf(first_phase, sizeof first_phase, "%s", phase);
	return 1;
}

static void test_progress_can_cancel(void **state) {
	(void)state;
	cloudlet_ctx *ctx = unreachable_ctx();
	cloudlet_doctor_options d = CLOUDLET_DOCTOR_OPTIONS_INIT;
	d.progress = stop_at_once;
	d.progress_userdata = &progress_calls;
	cloudlet_host_report *r = NULL;
	progress_calls = 0;
	assert_int_equal(cloudlet_doctor(&r, ctx, &d), CLOUDLET_E_CANCELLED);
	assert_int_equal(progress_calls, 1);
	assert_string_equal(first_phase, "capabilities");
	cloudlet_ctx_free(ctx);

	d.boot_probe = 5;
	assert_int_equal(cloudlet_ctx_new(&ctx, NULL), CLOUDLET_OK);
	assert_int_equal(cloudlet_doctor(&r, ctx, &d), CLOUDLET_E_INVALID_ARG);
	assert_message_contains("boot_probe");
	cloudlet_ctx_free(ctx);
}

int main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_version),
	    cmocka_unit_test(test_strerror),
	    cmocka_unit_test(test_null_arguments),
	    cmocka_unit_test(test_success_clears_message),
	    cmocka_unit_test(test_options_versioning),
	    cmocka_unit_test(test_older_option_versions),
	    cmocka_unit_test(test_settings),
	    cmocka_unit_test(test_invalid_settings),
	    cmocka_unit_test(test_bad_uri_fails_on_use),
	    cmocka_unit_test(test_error_is_thread_local),
	    cmocka_unit_test(test_cancel_handle),
	    cmocka_unit_test(test_progress_can_cancel),
	};
	return cmocka_run_group_tests_name("abi", tests, NULL, NULL);
}
