// VM synthesis on the real guest: a base is made, an instance resumed and
// customised (random data, a copy of it, busybox, zeros, text in its RAM
// disk; new and copied data on its disk; a counter process), its overlay
// made; then the launch VM is synthesized from the file and — at the same
// time — from a URL served on 127.0.0.1. Checked from inside each new VM:
// the fingerprint (checksums of the RAM-disk files and of the disk ranges
// written, read past the page cache; two disks, raw and qcow2) equals the launch VM's, the counter is
// still counting from where it was, and the fresh NIC has the MAC asked
// for. The same by early start (postcopy). Refusals (corrupt overlay, truncated download, wrong base, missing
// base, unusable CPU model) leave no domain and no files.
#include "harness.h"

#include <cloudlet.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

extern "C" {
#include <cmocka.h>
}

#include "itest.h"

static th_guest *guest, *launch;
static cloudlet_ctx *ctx;
static std::string store_dir, work, launch_name, overlay, fingerprint, base_id;
static int counter_at_capture;
static const char *cli_path, *server_script;
static pid_t server_pid = -1;
static int server_port;

// What the workload left in the VM. The disk ranges are read after the
// page cache is dropped, so they come from the disk image itself.
static std::string fingerprint_of(th_guest *g) {
	return check(g, "cd /ram && md5sum new new2 bb z text && echo 3 > /proc/sys/vm/drop_caches && "
	                "dd if=/dev/vda bs=65536 skip=32 count=16 2>/dev/null | md5sum && "
	                "dd if=/dev/vda bs=65536 skip=128 count=4 2>/dev/null | md5sum && "
	                "dd if=/dev/vda bs=65536 skip=0 count=16 2>/dev/null | md5sum && "
	                "md5sum /dev/vdb");
}

static void start_server(const std::string &file) {
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	server_pid = fork();
	if (server_pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		execl("/usr/bin/python3", "python3", server_script, file.c_str(), (char *)nullptr);
		_exit(127);
	}
	close(fds[1]);
	FILE *f = fdopen(fds[0], "r");
	assert_int_equal(fscanf(f, "PORT %d", &server_port), 1);
	fclose(f);
}

static int setup(void **) {
	assert_int_equal(th_setup(), 0);
	th_guest_options go = {0, 0, 1, 32, 0}; // a NIC, and a qcow2 disk /dev/vdb beside the raw /dev/vda
	if (th_guest_start(&guest, "synbase", &go) != 0)
		fail_msg("%s", th_error());
	store_dir = "/var/lib/cloudlet-test/syn-store-" + std::to_string(getpid());
	work = "/var/lib/cloudlet-test/syn-work-" + std::to_string(getpid());
	mkdir(work.c_str(), 0755);
	cloudlet_ctx_options co = CLOUDLET_CTX_OPTIONS_INIT;
	co.store_dir = store_dir.c_str();
	assert_int_equal(cloudlet_ctx_new(&ctx, &co), CLOUDLET_OK);
	check(guest, "dd if=/dev/urandom of=/dev/vda bs=65536 count=16 2>/dev/null && sync");
	cloudlet_base_options bo = CLOUDLET_BASE_OPTIONS_INIT;
	bo.name = "synbase";
	bo.stop = 1;
	cloudlet_base_info *b = nullptr;
	if (cloudlet_base_create(&b, ctx, th_guest_domain_name(guest), &bo) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	base_id = b->id;
	cloudlet_base_info_free(b);
	th_guest_poweroff(guest);

	launch_name = "cltest-" + std::to_string(getpid()) + "-launch";
	cloudlet_resume_options ro = CLOUDLET_RESUME_OPTIONS_INIT;
	ro.name = launch_name.c_str();
	if (cloudlet_base_resume(nullptr, ctx, "synbase", &ro) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	if (th_guest_attach_domain(&launch, launch_name.c_str(), nullptr, nullptr) != 0)
		fail_msg("%s", th_error());
	// The customisation: every dedup category, in memory and on disk.
	check(launch, "dd if=/dev/urandom of=/ram/new bs=1M count=8 2>/dev/null && cp /ram/new /ram/new2 && "
	              "cp /bin/busybox /ram/bb && dd if=/dev/zero of=/ram/z bs=1M count=4 2>/dev/null && "
	              "yes 'the quick brown fox jumps over the lazy dog' | head -c 4000000 > /ram/text");
	check(launch, "dd if=/dev/urandom of=/dev/vda bs=65536 count=16 seek=32 2>/dev/null && "
	              "dd if=/dev/vda of=/dev/vda bs=65536 count=4 skip=0 seek=128 2>/dev/null && "
	              "dd if=/dev/urandom of=/dev/vdb bs=4096 count=100 seek=3000 2>/dev/null && sync");
	check(launch, "(i=0; while :; do i=$((i+1)); echo $i > /ram/counter.t; mv /ram/counter.t /ram/counter; sleep 0.1; done) >/dev/null 2>&1 & sleep 1");
	fingerprint = fingerprint_of(launch);
	print_message("# launch fingerprint:\n%s", fingerprint.c_str());

	overlay = work + "/launch.ovl";
	counter_at_capture = atoi(check(launch, "cat /ram/counter").c_str());
	cloudlet_overlay_info *o = nullptr;
	if (cloudlet_overlay_create(&o, ctx, launch_name.c_str(), overlay.c_str(), nullptr) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	print_message("# overlay: %llu bytes\n", (unsigned long long)o->file_bytes);
	cloudlet_overlay_info_free(o);
	// The launch VM's job is done; it stays off so that nothing it does
	// could be mistaken for the synthesized VMs' state.
	th_guest_poweroff(launch);
	start_server(overlay);
	return 0;
}

static int teardown(void **) {
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, nullptr, 0);
	}
	cloudlet_ctx_free(ctx);
	th_guest_destroy(launch);
	th_guest_destroy(guest);
	std::string cmd = "rm -rf '" + store_dir + "' '" + work + "'";
	return system(cmd.c_str()) == 0 ? 0 : 0;
}

// The synthesized VM is the launch VM: same files, same disk, the counter
// counting on from where it was captured, and the NIC we asked for.
static void check_synthesized(const std::string &name, const char *mac) {
	th_guest *g = nullptr;
	if (th_guest_attach_domain(&g, name.c_str(), nullptr, nullptr) != 0)
		fail_msg("%s", th_error());
	int c1 = atoi(check(g, "cat /ram/counter").c_str());
	assert_true(c1 >= counter_at_capture);
	std::string fp = fingerprint_of(g);
	assert_string_equal(fp.c_str(), fingerprint.c_str());
	check(g, "sleep 0.5");
	assert_true(atoi(check(g, "cat /ram/counter").c_str()) > c1);
	if (mac) {
		// The hot-plugged NIC appears when the guest has enumerated it.
		std::string macs;
		for (int i = 0; i < 100 && macs.find(mac) == std::string::npos; i++) {
			macs = check(g, "cat /sys/class/net/*/address; sleep 0.1");
		}
		print_message("# %s NICs: %s", name.c_str(), macs.c_str());
		assert_true(macs.find(mac) != std::string::npos);
	}
	th_guest_destroy(g);
}

static void test_from_file_and_url_at_once(void **) {
	std::string a = "cltest-" + std::to_string(getpid()) + "-syn-file";
	std::string b = "cltest-" + std::to_string(getpid()) + "-syn-url";
	const char *mac = "52:54:00:12:34:56";
	cloudlet_status st_a = CLOUDLET_E_INTERNAL;
	std::string err_a, json_b;
	cloudlet_synthesis_info *ia = nullptr;
	// From the file through the C ABI, and from the URL through the CLI, at
	// the same time: two syntheses from one base are independent.
	std::thread ta([&] {
		cloudlet_synthesis_options o = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
		o.name = a.c_str();
		o.mac = mac;
		st_a = cloudlet_synthesize(&ia, ctx, overlay.c_str(), &o);
		if (st_a != CLOUDLET_OK)
			err_a = cloudlet_last_error_message();
	});
	int status = 0;
	std::string url = "http://127.0.0.1:" + std::to_string(server_port) + "/body";
	json_b = run_output(std::string(cli_path) + " --store " + store_dir + " --json synthesize " + url + " --name " + b, &status);
	ta.join();
	if (st_a != CLOUDLET_OK)
		fail_msg("synthesis from the file: %s", err_a.c_str());
	assert_int_equal(status, 0);
	print_message("# from file: restore %.2f s, NIC swap %.2f s, total %.2f s\n", ia->restore_seconds,
	              ia->nic_seconds, ia->total_seconds);
	assert_int_equal(ia->nic_count, 1);
	assert_string_equal(ia->macs[0], mac);
	assert_string_equal(ia->base_id, base_id.c_str());
	uint64_t records = 0;
	for (int k = 1; k < CLOUDLET_CHUNK_KINDS; k++)
		records += ia->records[k];
	assert_true(records > 2048); // the random data, at least
	cloudlet_synthesis_info_free(ia);

	json_object *j = json_tokener_parse(json_b.c_str()), *t = nullptr, *src = nullptr, *total = nullptr;
	assert_non_null(j);
	assert_true(json_object_object_get_ex(j, "source", &src));
	assert_string_equal(json_object_get_string(src), url.c_str());
	assert_true(json_object_object_get_ex(j, "timings_seconds", &t));
	for (const char *k : {"fetch", "decompress", "apply", "restore", "nic_swap", "total"})
		assert_true(json_object_object_get_ex(t, k, &total));
	print_message("# from URL: %s\n", json_object_to_json_string(t));
	json_object_put(j);

	check_synthesized(a, mac);
	check_synthesized(b, nullptr);
}

// A refused synthesis leaves no domain and no instance folder.
static void expect_refused(const std::string &source, cloudlet_status want, const char *word,
                           cloudlet_synthesis_options o = CLOUDLET_SYNTHESIS_OPTIONS_INIT, cloudlet_ctx *c = ctx) {
	std::string name = "cltest-" + std::to_string(getpid()) + "-refused";
	o.name = name.c_str();
	size_t before = entries(store_dir + "/instances");
	cloudlet_status st = cloudlet_synthesize(nullptr, c, source.c_str(), &o);
	std::string msg = cloudlet_last_error_message();
	print_message("# refused (%d): %s\n", st, msg.c_str());
	assert_int_equal(st, want);
	if (word)
		assert_non_null(strstr(msg.c_str(), word));
	assert_false(domain_state(name) != -1);
	assert_int_equal(entries(store_dir + "/instances"), before);
}

static void test_refusals(void **) {
	struct stat st;
	assert_int_equal(stat(overlay.c_str(), &st), 0);
	std::string bytes;
	{
		std::ifstream f(overlay, std::ios::binary);
		bytes.assign(std::istreambuf_iterator<char>(f), {});
	}
	// Corrupt: one bit flipped in the middle (inside a segment).
	std::string bad = work + "/flipped.ovl";
	{
		std::string b = bytes;
		b[b.size() / 2] ^= 0x10;
		std::ofstream(bad, std::ios::binary) << b;
	}
	expect_refused(bad, CLOUDLET_E_CORRUPT, "checksum");
	// Truncated file: the footer is missing.
	std::string cut = work + "/cut.ovl";
	std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() * 2 / 3);
	expect_refused(cut, CLOUDLET_E_CORRUPT, nullptr);
	// Truncated download: the server promises the whole file, sends 2/3 and closes.
	std::string url = "http://127.0.0.1:" + std::to_string(server_port) + "/truncated?size=" +
	                  std::to_string(bytes.size()) + "&send=" + std::to_string(bytes.size() * 2 / 3);
	expect_refused(url, CLOUDLET_E_IO, "truncated");
	// Nothing is listening there.
	expect_refused("http://127.0.0.1:1/launch.ovl", CLOUDLET_E_IO, nullptr);

	// Missing base: a cloudlet whose store does not have it.
	cloudlet_ctx *empty = nullptr;
	cloudlet_ctx_options co = CLOUDLET_CTX_OPTIONS_INIT;
	std::string other_store = work + "/empty-store";
	co.store_dir = other_store.c_str();
	assert_int_equal(cloudlet_ctx_new(&empty, &co), CLOUDLET_OK);
	expect_refused(overlay, CLOUDLET_E_NOT_FOUND, base_id.c_str(), CLOUDLET_SYNTHESIS_OPTIONS_INIT, empty);
	cloudlet_ctx_free(empty);

	// Wrong base: the caller insists on another base of this store.
	std::string other = "cltest-" + std::to_string(getpid()) + "-other";
	cloudlet_synthesis_options so = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
	so.name = other.c_str();
	if (cloudlet_synthesize(nullptr, ctx, overlay.c_str(), &so) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	cloudlet_base_options bo = CLOUDLET_BASE_OPTIONS_INIT;
	bo.name = "otherbase";
	bo.stop = 1;
	cloudlet_base_info *b = nullptr;
	if (cloudlet_base_create(&b, ctx, other.c_str(), &bo) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	cloudlet_base_info_free(b);
	cloudlet_synthesis_options wrong = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
	wrong.base = "otherbase";
	expect_refused(overlay, CLOUDLET_E_INVALID_ARG, "wrong base", wrong);

	// A MAC that is not one.
	cloudlet_synthesis_options badmac = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
	badmac.mac = "01:00:5e:00:00:01"; // multicast
	expect_refused(overlay, CLOUDLET_E_INVALID_ARG, "MAC", badmac);

	// A virt type that cannot run the base's CPU model, if this host has one.
	std::string vt = virt_type_without_cpu_model(ctx);
	if (vt.empty()) {
		print_message("# no virt type here lacks core2duo: the CPU refusal is covered by test_base only\n");
		return;
	}
	cloudlet_synthesis_options cpu = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
	cpu.virt_type = vt.c_str();
	expect_refused(overlay, CLOUDLET_E_HOST, "core2duo", cpu);
}

// Early start: the VM runs as soon as QEMU has its device state, and its
// memory comes after it by postcopy. The guest faults on pages at once
// (device state loading already reads guest RAM), so some pages must have
// gone on demand, and the VM is the launch VM all the same.
static void test_early_start_is_exact(void **) {
	std::string name = "cltest-" + std::to_string(getpid()) + "-syn-early";
	const char *mac = "52:54:00:12:34:57";
	cloudlet_synthesis_options o = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
	o.name = name.c_str();
	o.mac = mac;
	o.flags = CLOUDLET_SYNTHESIS_EARLY_START;
	cloudlet_synthesis_info *i = nullptr;
	if (cloudlet_synthesize(&i, ctx, overlay.c_str(), &o) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	print_message("# early start: running after %.3f s (restore %.3f s, total %.3f s); %llu pages on demand "
	              "(%llu requests), %llu behind them\n",
	              i->running_seconds, i->restore_seconds, i->total_seconds, (unsigned long long)i->demand_pages,
	              (unsigned long long)i->demand_requests, (unsigned long long)i->background_pages);
	assert_int_equal(i->version, 2);
	assert_true(i->early_start);
	assert_true(i->demand_pages > 0);
	assert_true(i->demand_requests >= 1);
	// Every data page of the launch memory went exactly once: the RAM disk
	// alone holds 8 + 8 + 4 MiB of non-zero data (busybox, text) = 5 000+ pages.
	assert_true(i->demand_pages + i->background_pages > 5000);
	assert_true(i->demand_pages + i->background_pages <= i->memory_chunks);
	assert_true(i->running_seconds > 0 && i->running_seconds < i->total_seconds);
	cloudlet_synthesis_info_free(i);
	check_synthesized(name, mac);
}

// The fingerprint commands, run from another thread (no cmocka there):
// the output, or "" with `err` set.
static std::string fingerprint_quietly(th_guest *g, std::string &err) {
	char *out = th_guest_check(g,
	                           "cd /ram && md5sum new new2 bb z text && echo 3 > /proc/sys/vm/drop_caches && "
	                           "dd if=/dev/vda bs=65536 skip=32 count=16 2>/dev/null | md5sum && "
	                           "dd if=/dev/vda bs=65536 skip=128 count=4 2>/dev/null | md5sum && "
	                           "dd if=/dev/vda bs=65536 skip=0 count=16 2>/dev/null | md5sum && "
	                           "md5sum /dev/vdb",
	                           120000);
	if (!out) {
		err = th_error();
		return "";
	}
	std::string s = out;
	free(out);
	return s;
}

// Early start from a URL that arrives slowly (the whole overlay in about
// 8 s): the VM runs while most of the overlay is still on its way, and a
// guest that reads its files and disks at once — pages that have not
// arrived yet — gets the right bytes: the fingerprint taken *during* the
// download, from inside, is the launch VM's.
static void test_early_start_while_downloading(void **) {
	struct stat st;
	assert_int_equal(stat(overlay.c_str(), &st), 0);
	double rate = static_cast<double>(st.st_size) / 8.0;
	std::string url = "http://127.0.0.1:" + std::to_string(server_port) + "/slow?rate=" +
	                  std::to_string(static_cast<long long>(rate));
	std::string name = "cltest-" + std::to_string(getpid()) + "-syn-early-url";
	std::string during, err;
	std::atomic<bool> done{false};
	std::thread watcher([&] {
		while (!done && domain_state(name) != VIR_DOMAIN_RUNNING)
			std::this_thread::sleep_for(std::chrono::milliseconds(20));
		if (done) {
			err = "the VM never ran during the synthesis";
			return;
		}
		th_guest *g = nullptr;
		if (th_guest_attach_domain(&g, name.c_str(), nullptr, nullptr) != 0) {
			err = th_error();
			return;
		}
		during = fingerprint_quietly(g, err);
		th_guest_forget(g);
	});
	cloudlet_synthesis_options o = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
	o.name = name.c_str();
	o.flags = CLOUDLET_SYNTHESIS_EARLY_START;
	cloudlet_synthesis_info *i = nullptr;
	cloudlet_status rc = cloudlet_synthesize(&i, ctx, url.c_str(), &o);
	std::string msg = rc == CLOUDLET_OK ? "" : cloudlet_last_error_message();
	done = true;
	watcher.join();
	if (rc != CLOUDLET_OK)
		fail_msg("%s", msg.c_str());
	print_message("# early start from a slow URL (%.0f bytes/s): running after %.2f s of a %.2f s download; "
	              "%llu pages asked for, %llu of them waited for the overlay, %llu behind them\n",
	              rate, i->running_seconds, i->read_seconds, (unsigned long long)i->demand_pages,
	              (unsigned long long)i->held_pages, (unsigned long long)i->background_pages);
	if (!err.empty())
		fail_msg("the fingerprint during the download: %s", err.c_str());
	// Ran with most of the overlay still to come (its disks and start block
	// are its first ~15 %), and the guest read pages before they arrived.
	assert_true(i->running_seconds < 0.5 * i->read_seconds);
	assert_true(i->held_pages > 0);
	assert_string_equal(during.c_str(), fingerprint.c_str());
	cloudlet_synthesis_info_free(i);
	check_synthesized(name, nullptr); // and destroys it
}

// The overlay's source stops mid-postcopy (half of it sent, then silence):
// the running VM cannot go on (its memory is incomplete), so it is ended
// once the stall timeout passes, the error says why, and nothing is left.
static void test_early_start_source_cut(void **) {
	struct stat st;
	assert_int_equal(stat(overlay.c_str(), &st), 0);
	std::string url = "http://127.0.0.1:" + std::to_string(server_port) + "/stall-after?send=" +
	                  std::to_string(static_cast<long long>(st.st_size / 2));
	std::string name = "cltest-" + std::to_string(getpid()) + "-syn-early-cut";
	std::atomic<bool> done{false}, ran{false};
	std::thread watcher([&] {
		while (!done) {
			if (domain_state(name) == VIR_DOMAIN_RUNNING)
				ran = true;
			std::this_thread::sleep_for(std::chrono::milliseconds(20));
		}
	});
	size_t before = entries(store_dir + "/instances");
	cloudlet_synthesis_options o = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
	o.name = name.c_str();
	o.flags = CLOUDLET_SYNTHESIS_EARLY_START;
	o.stall_timeout_seconds = 3;
	auto t0 = std::chrono::steady_clock::now();
	cloudlet_status rc = cloudlet_synthesize(nullptr, ctx, url.c_str(), &o);
	double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
	std::string msg = cloudlet_last_error_message();
	done = true;
	watcher.join();
	print_message("# source cut mid-postcopy: %d after %.2f s: %s\n", rc, took, msg.c_str());
	assert_true(ran); // the VM had started
	assert_int_equal(rc, CLOUDLET_E_TIMEOUT);
	assert_non_null(strstr(msg.c_str(), "early-started VM was ended"));
	// Within the stall timeout and the time it takes to end a QEMU.
	assert_true(took < 3 + 20);
	assert_int_equal(domain_state(name), -1);
	assert_int_equal(entries(store_dir + "/instances"), before);
}

// Where QEMU cannot use userfaultfd, early start is refused before anything
// is made, with the reason and the way out.
static void test_early_start_refused_without_userfaultfd(void **) {
	std::string was;
	std::getline(std::ifstream("/proc/sys/vm/unprivileged_userfaultfd"), was);
	assert_false(was.empty());
	{
		std::ofstream("/proc/sys/vm/unprivileged_userfaultfd") << "0\n";
	}
	cloudlet_synthesis_options o = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
	o.flags = CLOUDLET_SYNTHESIS_EARLY_START;
	expect_refused(overlay, CLOUDLET_E_HOST, "userfaultfd", o);
	{
		std::ofstream("/proc/sys/vm/unprivileged_userfaultfd") << was << "\n";
	}
	// Unknown flags are refused too.
	o.flags = 1u << 7;
	expect_refused(overlay, CLOUDLET_E_INVALID_ARG, "flags", o);
}

int main(int argc, char **argv) {
	cli_path = argc > 1 ? argv[1] : "cloudlet";
	server_script = argc > 2 ? argv[2] : "http_test_server.py";
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_from_file_and_url_at_once),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_early_start_is_exact),
	    cmocka_unit_test(test_early_start_while_downloading),
	    cmocka_unit_test(test_early_start_source_cut),
	    cmocka_unit_test(test_early_start_refused_without_userfaultfd),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
