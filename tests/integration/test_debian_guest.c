/* Boots the Debian 12 test guest (tests/guest/build-debian-guest.sh) through
 * the harness, from its own disk by SeaBIOS + GRUB, and checks from inside
 * that it is the real system it claims to be: systemd running, ext4 root on
 * /dev/vda1 with discard, python3 and sqlite3, the balloon bound, TRIM, data
 * that reaches the disk. Then virsh save / restore of it. Prints the boot
 * times, the RAM it uses and the save image's size and time. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c99 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static th_guest *guest;

static double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *check_t(const char *cmd, int timeout_ms) {
	char *out = th_guest_check(guest, cmd, timeout_ms);
	if (!out)
		fail_msg("%s", th_error());
	return out;
}

static char *check(const char *cmd) {
	return check_t(cmd, 120000);
}

static int setup(void **state) {
	(void)state;
	if (th_setup() != 0) {
		fprintf(stderr, "harness setup failed: %s\n", th_error());
		return -1;
	}
	/* Built (or found cached), and the virt type probed, before the clock
	 * starts: the boot alone is timed. */
	double b0 = now_s();
	th_virt_type();
	const char *dir = th_debian_guest_dir();
	if (!dir) {
		fprintf(stderr, "Debian guest image: %s\n", th_error());
		return -1;
	}
	fprintf(stderr, "# Debian guest image %s (ready after %.1f s)\n", dir, now_s() - b0);
	th_guest_options o = {0};
	o.nic = 1;
	o.debian = 1;
	o.disk_mib = 64;  /* data disks: raw /dev/vdb, */
	o.qcow2_mib = 32; /* qcow2 /dev/vdc */
	double t0 = now_s();
	if (th_guest_start(&guest, "debian", &o) != 0) {
		fprintf(stderr, "Debian guest did not start: %s\n", th_error());
		return -1;
	}
	double shell = now_s() - t0;
	/* --wait: until the boot job queue is empty (running, degraded, ...). */
	char *st = NULL;
	int status = 0;
	if (th_guest_run(guest, "systemctl is-system-running --wait", 400000, &st, &status) != 0) {
		fprintf(stderr, "systemd did not finish booting: %s\n", th_error());
		return -1;
	}
	double running = now_s() - t0;
	fprintf(stderr, "# guest %s under virt type '%s': shell answered %.1f s after start, "
	        "systemd '%s' after %.1f s\n",
	        th_guest_domain_name(guest), th_virt_type(), shell, st ? strtok(st, "\n") : "?", running);
	free(st);
	char *out = NULL;
	if (th_guest_run(guest, "systemd-analyze; free -m", 60000, &out, &status) == 0)
		fprintf(stderr, "%s", out);
	free(out);
	return 0;
}

static int teardown(void **state) {
	(void)state;
	th_guest_destroy(guest);
	return 0;
}

static void test_systemd_is_running(void **state) {
	(void)state;
	char *out = NULL;
	int status = -1;
	assert_int_equal(th_guest_run(guest, "systemctl is-system-running", 60000, &out, &status), 0);
	if (strcmp(out, "running\n") != 0) {
		char *failed = NULL;
		th_guest_run(guest, "systemctl --failed --no-pager; systemctl list-jobs --no-pager", 60000, &failed, NULL);
		fail_msg("system state %s; failed units and jobs:\n%s", out, failed ? failed : "?");
	}
	free(out);
	out = check("cat /proc/1/comm; readlink /proc/1/exe");
	assert_string_equal(out, "systemd\n/usr/lib/systemd/systemd");
	free(out);
	out = check("hostname");
	assert_string_equal(out, "cloudlet-debian");
	free(out);
}

static void test_root_is_ext4_on_vda1_with_discard(void **state) {
	(void)state;
	char *out = check("findmnt -n -o SOURCE,FSTYPE /");
	assert_string_equal(out, "/dev/vda1 ext4");
	free(out);
	out = check("findmnt -n -o OPTIONS /");
	assert_non_null(strstr(out, "discard"));
	free(out);
	/* The 4 GiB disk, and a file system that fills its partition. */
	out = check("cat /sys/block/vda/size; df -k --output=size / | tail -n1");
	unsigned long sectors = 0, kib = 0;
	assert_int_equal(sscanf(out, "%lu %lu", &sectors, &kib), 2);
	assert_int_equal(sectors, 8388608);
	assert_true(kib > 3900000);
	free(out);
}

static void test_booted_by_grub_from_disk(void **state) {
	(void)state;
	/* GRUB's linux command sets BOOT_IMAGE=; libvirt's direct kernel boot
	 * does not. */
	char *out = check("cat /proc/cmdline");
	assert_non_null(strstr(out, "BOOT_IMAGE=/boot/vmlinuz-"));
	assert_non_null(strstr(out, "root=UUID="));
	free(out);
}

static void test_python_and_sqlite(void **state) {
	(void)state;
	char *out = check("python3 -c 'import sqlite3, sys; print(sys.version_info[0], 6 * 7)'");
	assert_string_equal(out, "3 42");
	free(out);
	out = check("sqlite3 /root/t.db 'create table t(x); insert into t values (6*7); select x from t;' && rm /root/t.db");
	assert_string_equal(out, "42");
	free(out);
}

static void test_modules_loaded_by_udev(void **state) {
	(void)state;
	/* Nothing loads them by hand: udev (modalias) and the initramfs. */
	char *out = check("for m in virtio_pci virtio_blk virtio_net virtio_console virtio_balloon ext4; do "
	                  "[ -d /sys/module/$m ] || echo missing $m; done");
	assert_string_equal(out, "");
	free(out);
	out = check("ls /sys/bus/virtio/drivers/virtio_balloon/ | grep -c '^virtio[0-9]'");
	assert_string_equal(out, "1");
	free(out);
}

static void test_nic_configured_by_type(void **state) {
	(void)state;
	/* networkd matches the NIC by type; DHCP from QEMU's user network. */
	char *out = check_t("for i in $(seq 120); do ip -4 -o addr show scope global | grep -q 10.0.2. && break; sleep 0.5; done; "
	                    "ip -4 -o addr show scope global | grep -c 'inet 10\\.0\\.2\\.'",
	                    120000);
	assert_string_equal(out, "1");
	free(out);
	out = check("cat /sys/class/net/*/address | grep -vc '^00:00:00:00:00:00$'");
	assert_string_equal(out, "1");
	free(out);
}

/* Bytes the guest's system disk layer (its own qcow2 over the cache) takes. */
static long long layer_bytes(void) {
	char path[4096];
	snprintf(path, sizeof path, "%s/system.qcow2", th_guest_workdir(guest));
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (long long)st.st_blocks * 512;
}

static void test_data_disks(void **state) {
	(void)state;
	char *out = check("cat /sys/block/vdb/size /sys/block/vdc/size");
	assert_string_equal(out, "131072\n65536"); /* 64 MiB raw, 32 MiB qcow2 */
	free(out);
}

static void test_fstrim_frees_the_layer(void **state) {
	(void)state;
	char *out = check("dd if=/dev/urandom of=/root/trim bs=1M count=64 status=none && sync");
	free(out);
	long long full = layer_bytes();
	/* "discard" in fstab frees blocks as files go; fstrim does the rest. */
	out = check("rm /root/trim && sync && fstrim -v /");
	assert_non_null(strstr(out, "trimmed"));
	free(out);
	long long trimmed = layer_bytes();
	fprintf(stderr, "# system disk layer: %.1f MiB with a 64 MiB file, %.1f MiB after rm + fstrim\n",
	        (double)full / 1048576, (double)trimmed / 1048576);
	assert_true(full - trimmed > 48LL << 20);
}

/* Runs a host command; its first output line (static), or fails the test. */
static const char *host(const char *cmd) {
	static char line[4096];
	line[0] = 0;
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	if (!fgets(line, sizeof line, p))
		line[0] = 0;
	while (fgetc(p) != EOF) {
	}
	int st = pclose(p);
	if (st != 0)
		fail_msg("host command failed (%d): %s", st, cmd);
	line[strcspn(line, "\n")] = 0;
	return line;
}

static void test_swapped_nic_comes_up(void **state) {
	(void)state;
	/* The NIC is replaced live by one with another MAC (what a handoff
	 * does): networkd matches it by type and DHCP configures it. */
	const char *dom = th_guest_domain_name(guest);
	char cmd[8192], mac[64];
	snprintf(cmd, sizeof cmd, "virsh -q -c qemu:///system domiflist %s | awk '{print $5}'", dom);
	snprintf(mac, sizeof mac, "%s", host(cmd));
	assert_int_equal(strlen(mac), 17);
	snprintf(cmd, sizeof cmd, "virsh -q -c qemu:///system detach-interface %s user --mac %s --live >/dev/null", dom, mac);
	host(cmd);
	char *out = check("for i in $(seq 120); do grep -q . /sys/class/net/e*/address 2>/dev/null || break; sleep 0.5; done; "
	                  "ls /sys/class/net");
	assert_string_equal(out, "lo");
	free(out);
	char xml[4096];
	snprintf(xml, sizeof xml, "%s/nic.xml", th_guest_workdir(guest));
	FILE *f = fopen(xml, "w");
	assert_non_null(f);
	fprintf(f, "<interface type='user'><mac address='52:54:00:c1:de:b1'/><model type='virtio'/></interface>\n");
	fclose(f);
	snprintf(cmd, sizeof cmd, "virsh -q -c qemu:///system attach-device %s %s --live >/dev/null", dom, xml);
	host(cmd);
	out = check_t("for i in $(seq 120); do ip -4 -o addr show scope global | grep -q 10.0.2. && break; sleep 0.5; done; "
	              "cat /sys/class/net/e*/address; ip -4 -o addr show scope global | grep -c 'inet 10\\.0\\.2\\.'",
	              120000);
	assert_string_equal(out, "52:54:00:c1:de:b1\n1");
	free(out);
}

static void test_fstrim(void **state) {
	(void)state;
	char *out = check("fstrim -v /");
	assert_non_null(strstr(out, "trimmed"));
	free(out);
}

static void test_data_reaches_the_disk(void **state) {
	(void)state;
	char *a = check("dd if=/dev/urandom of=/root/blob bs=1M count=8 status=none && sha256sum </root/blob");
	char *b = check("sync && echo 3 >/proc/sys/vm/drop_caches && sha256sum </root/blob");
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), 67); /* "<64 hex>  -" */
	free(a);
	free(b);
}

static void test_save_and_restore(void **state) {
	(void)state;
	char *before = check("sha256sum </root/blob; cat /proc/sys/kernel/random/boot_id");
	char path[4096];
	snprintf(path, sizeof path, "%s/save.img", th_guest_workdir(guest));
	double t0 = now_s();
	if (th_guest_save(guest, path) != 0)
		fail_msg("%s", th_error());
	double saved = now_s() - t0;
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	t0 = now_s();
	if (th_guest_restore(guest, path) != 0)
		fail_msg("%s", th_error());
	double restored = now_s() - t0;
	fprintf(stderr, "# virsh save: %.1f s, %.1f MB; restore until the shell answers again: %.1f s\n", saved,
	        (double)st.st_size / 1e6, restored);
	char *after = check("sha256sum </root/blob; cat /proc/sys/kernel/random/boot_id");
	assert_string_equal(before, after); /* same data, same boot */
	free(before);
	free(after);
	char *out = check("systemctl is-system-running");
	assert_string_equal(out, "running");
	free(out);
	unlink(path);
}

int main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_systemd_is_running),
	    cmocka_unit_test(test_root_is_ext4_on_vda1_with_discard),
	    cmocka_unit_test(test_booted_by_grub_from_disk),
	    cmocka_unit_test(test_python_and_sqlite),
	    cmocka_unit_test(test_modules_loaded_by_udev),
	    cmocka_unit_test(test_nic_configured_by_type),
	    cmocka_unit_test(test_swapped_nic_comes_up),
	    cmocka_unit_test(test_data_disks),
	    cmocka_unit_test(test_fstrim),
	    cmocka_unit_test(test_fstrim_frees_the_layer),
	    cmocka_unit_test(test_data_reaches_the_disk),
	    cmocka_unit_test(test_save_and_restore),
	};
	return cmocka_run_group_tests_name("debian_guest", tests, setup, teardown);
}
