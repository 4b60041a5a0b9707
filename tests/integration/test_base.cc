// Base VMs against the real test guest (with a virtio NIC and a data disk):
//  - create from the running guest (memory + disk + boot files, indexed and
//    hashed), the source shut off;
//  - two instances at once, each on its own shell channel, each with its
//    own UUID and a new MAC, both with the source's RAM files, counter and
//    disk content; a write in one is invisible in the other; the base files
//    hash as before afterwards;
//  - a virt type that cannot run the CPU model is refused before anything
//    exists;
//  - export -> remove -> import gives the same ID; a damaged package is
//    refused with nothing left behind;
//  - one flipped byte in any stored file: show reports it, resume refuses.
#include "harness.h"

#include <cloudlet.h>

#include <dirent.h>
#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "itest.h"

static th_guest *guest;
static cloudlet_ctx *ctx;
static std::string store_dir, base_id, sums, disk_sum, qcow2_sum;
static int counter_at_create;

static bool exists(const std::string &p) {
	struct stat st;
	return stat(p.c_str(), &st) == 0;
}

static int setup(void **) {
	assert_int_equal(th_setup(), 0);
	th_guest_options o = {0, 0, 1, 32, 0}; // NIC, and a qcow2 disk beside the raw one
	if (th_guest_start(&guest, "base", &o) != 0)
		fail_msg("%s", th_error());
	store_dir = std::string("/var/lib/cloudlet-test/store-") + std::to_string(getpid());
	cloudlet_ctx_options co = CLOUDLET_CTX_OPTIONS_INIT;
	co.store_dir = store_dir.c_str();
	assert_int_equal(cloudlet_ctx_new(&ctx, &co), CLOUDLET_OK);
	sums = check(guest, "dd if=/dev/urandom of=/ram/a bs=1024 count=2000 2>/dev/null && md5sum /ram/a");
	disk_sum = check(guest, "dd if=/dev/urandom of=/dev/vda bs=65536 count=16 2>/dev/null && sync && "
	                        "dd if=/dev/vda bs=65536 count=16 2>/dev/null | md5sum");
	qcow2_sum = check(guest, "dd if=/dev/urandom of=/dev/vdb bs=65536 count=8 seek=100 2>/dev/null && sync && "
	                         "dd if=/dev/vdb bs=1048576 2>/dev/null | md5sum");
	check(guest, "(i=0; while :; do i=$((i+1)); echo $i > /ram/counter.t; mv /ram/counter.t /ram/counter; sleep 0.1; done) >/dev/null 2>&1 & sleep 1");
	return 0;
}

static int teardown(void **) {
	cloudlet_ctx_free(ctx);
	th_guest_destroy(guest);
	std::string cmd = "rm -rf '" + store_dir + "'";
	if (system(cmd.c_str()) != 0)
		fprintf(stderr, "# could not remove %s\n", store_dir.c_str());
	return 0;
}

static void test_create(void **) {
	counter_at_create = atoi(check(guest, "cat /ram/counter").c_str());
	cloudlet_base_options o = CLOUDLET_BASE_OPTIONS_INIT;
	o.name = "testbase";
	o.stop = 1;
	cloudlet_base_info *b = nullptr;
	if (cloudlet_base_create(&b, ctx, th_guest_domain_name(guest), &o) != CLOUDLET_OK)
		fail_msg("%s", cloudlet_last_error_message());
	print_message("# base %s: %llu bytes in %zu parts; capture %.2f s, disks %.2f s, hashing %.2f s, total %.2f s\n",
	              b->id, (unsigned long long)b->total_bytes, b->part_count, b->capture_seconds, b->disk_seconds,
	              b->hash_seconds, b->total_seconds);
	assert_int_equal(strlen(b->id), 64);
	assert_string_equal(b->status, "ok");
	assert_string_equal(b->cpu_model, "core2duo");
	std::set<std::string> roles;
	for (size_t i = 0; i < b->part_count; i++)
		roles.insert(b->parts[i].role);
	for (const char *r : {"memory", "memory-index", "disk", "disk-index", "disk-sector-index", "domain-xml", "kernel", "initrd"})
		assert_true(roles.count(r));
	size_t disks = 0;
	for (size_t i = 0; i < b->part_count; i++)
		disks += strcmp(b->parts[i].role, "disk") == 0;
	assert_int_equal(disks, 2); // the raw and the qcow2 disk, both stored raw
	assert_true(b->capture_seconds > 0 && b->hash_seconds > 0 && b->total_seconds >= b->capture_seconds);
	base_id = b->id;
	cloudlet_base_info_free(b);
	assert_int_equal(th_guest_poweroff(guest), 0); // `stop` shut it off

	// The same name again is refused; the store lists one base.
	cloudlet_base_list *l = nullptr;
	assert_int_equal(cloudlet_base_list_get(&l, ctx), CLOUDLET_OK);
	assert_int_equal(l->count, 1);
	assert_string_equal(l->bases[0]->name, "testbase");
	cloudlet_base_list_free(l);
}

static void test_two_instances(void **) {
	cloudlet_base_info *before = nullptr;
	cloudlet_base_options full = CLOUDLET_BASE_OPTIONS_INIT;
	full.full_verify = 1;
	assert_int_equal(cloudlet_base_show(&before, ctx, base_id.c_str(), &full), CLOUDLET_OK);
	assert_string_equal(before->status, "ok");

	cloudlet_instance_info *inst[2] = {};
	th_guest *g[2] = {};
	for (int i = 0; i < 2; i++) {
		// Named like harness domains, so a crashed run's leftovers are swept.
		std::string iname = "cltest-" + std::to_string(getpid()) + "-inst-" + std::to_string(i);
		cloudlet_resume_options ro = CLOUDLET_RESUME_OPTIONS_INIT;
		ro.name = iname.c_str();
		if (cloudlet_base_resume(&inst[i], ctx, "testbase", &ro) != CLOUDLET_OK)
			fail_msg("%s", cloudlet_last_error_message());
		print_message("# instance %s: %.2f s (restore %.2f s, NIC %.2f s), MAC %s -> %s\n", inst[i]->name,
		              inst[i]->seconds, inst[i]->restore_seconds, inst[i]->nic_seconds,
		              inst[i]->nic_count ? inst[i]->old_macs[0] : "-", inst[i]->nic_count ? inst[i]->macs[0] : "-");
		assert_int_equal(inst[i]->nic_count, 1);
		assert_string_not_equal(inst[i]->macs[0], inst[i]->old_macs[0]);
		if (th_guest_attach_domain(&g[i], inst[i]->name, nullptr, nullptr) != 0)
			fail_msg("%s", th_error());
		std::string sock = th_guest_channel_path(g[i]);
		assert_true(sock.rfind(inst[i]->dir, 0) == 0); // its own path
	}
	assert_string_not_equal(inst[0]->uuid, inst[1]->uuid);
	assert_string_not_equal(inst[0]->macs[0], inst[1]->macs[0]);
	for (int i = 0; i < 2; i++) {
		// Each answers on its own channel, with the source's state.
		assert_string_equal(check(g[i], "md5sum /ram/a").c_str(), sums.c_str());
		assert_string_equal(check(g[i], "dd if=/dev/vda bs=65536 count=16 2>/dev/null | md5sum").c_str(),
		                    disk_sum.c_str());
		assert_string_equal(check(g[i], "dd if=/dev/vdb bs=1048576 2>/dev/null | md5sum").c_str(), qcow2_sum.c_str());
		int c1 = atoi(check(g[i], "cat /ram/counter").c_str());
		assert_true(c1 >= counter_at_create);
		check(g[i], "sleep 1");
		assert_true(atoi(check(g[i], "cat /ram/counter").c_str()) > c1);
		// The guest sees the new MAC.
		std::string macs = check(g[i], "cat /sys/class/net/*/address");
		if (macs.find(inst[i]->macs[0]) == std::string::npos)
			fail_msg("guest reports MACs '%s', expected %s", macs.c_str(), inst[i]->macs[0]);
	}
	// Copy-on-write: a write in one instance stays there.
	check(g[0], "dd if=/dev/urandom of=/dev/vda bs=65536 count=4 2>/dev/null && sync");
	assert_string_equal(check(g[1], "dd if=/dev/vda bs=65536 count=16 2>/dev/null | md5sum").c_str(),
	                    disk_sum.c_str());
	// The base cannot be removed while its instances run.
	assert_int_equal(cloudlet_base_remove(ctx, "testbase"), CLOUDLET_E_BUSY);
	assert_non_null(strstr(cloudlet_last_error_message(), "is running"));
	for (int i = 0; i < 2; i++) {
		th_guest_destroy(g[i]);
		cloudlet_instance_info_free(inst[i]);
	}
	// The base's files are what they were.
	cloudlet_base_info *after = nullptr;
	assert_int_equal(cloudlet_base_show(&after, ctx, base_id.c_str(), &full), CLOUDLET_OK);
	assert_string_equal(after->status, "ok");
	assert_int_equal(after->part_count, before->part_count);
	for (size_t i = 0; i < after->part_count; i++)
		assert_string_equal(after->parts[i].sha256, before->parts[i].sha256);
	cloudlet_base_info_free(before);
	cloudlet_base_info_free(after);
}

static std::string new_uuid_text() {
	uuid_t u;
	char text[37];
	uuid_generate_random(u);
	uuid_unparse_lower(u, text);
	return text;
}

static std::string refused_name() { return "cltest-" + std::to_string(getpid()) + "-refused"; }
static std::string cli_name() { return "cltest-" + std::to_string(getpid()) + "-cli"; }

static int domain_exists(const char *name) {
	virConnectPtr c = virConnectOpen("qemu:///system");
	virDomainPtr d = virDomainLookupByName(c, name);
	int r = d != nullptr;
	if (d)
		virDomainFree(d);
	virConnectClose(c);
	return r;
}

static void test_unusable_cpu_refused_up_front(void **) {
	// Find a virt type this host offers but where core2duo is unusable.
	std::string vt = virt_type_without_cpu_model(ctx);
	if (vt.empty()) {
		print_message("# skipped: every virt type here can run core2duo\n");
		skip();
	}
	size_t before = entries(store_dir + "/instances");
	cloudlet_resume_options o = CLOUDLET_RESUME_OPTIONS_INIT;
	std::string refused = refused_name();
	o.name = refused.c_str();
	o.virt_type = vt.c_str();
	assert_int_equal(cloudlet_base_resume(nullptr, ctx, base_id.c_str(), &o), CLOUDLET_E_HOST);
	std::string msg = cloudlet_last_error_message();
	print_message("# %s\n", msg.c_str());
	assert_non_null(strstr(msg.c_str(), "core2duo"));
	assert_non_null(strstr(msg.c_str(), "features")); // libvirt names the missing ones
	assert_false(domain_exists(refused_name().c_str()));
	assert_int_equal(entries(store_dir + "/instances"), before);
}

static void test_export_remove_import(void **) {
	std::string pkg = store_dir + "/../base-" + std::to_string(getpid()) + ".pkg";
	assert_int_equal(cloudlet_base_export(ctx, base_id.c_str(), pkg.c_str(), nullptr), CLOUDLET_OK);
	struct stat st;
	assert_int_equal(stat(pkg.c_str(), &st), 0);
	print_message("# package: %lld bytes\n", (long long)st.st_size);
	// What the package holds, read without importing it.
	cloudlet_base_info *pi = nullptr;
	assert_int_equal(cloudlet_base_package_inspect(&pi, ctx, pkg.c_str()), CLOUDLET_OK);
	assert_string_equal(pi->id, base_id.c_str());
	assert_string_equal(pi->name, "testbase");
	assert_string_equal(pi->status, "unverified");
	assert_string_equal(pi->imported_from, pkg.c_str());
	assert_true(pi->part_count >= 2 && pi->total_bytes > 0);
	cloudlet_base_info_free(pi);
	assert_int_equal(cloudlet_base_remove(ctx, base_id.c_str()), CLOUDLET_OK);
	assert_false(exists(store_dir + "/bases/" + base_id));
	cloudlet_base_info *b = nullptr;
	assert_int_equal(cloudlet_base_show(&b, ctx, base_id.c_str(), nullptr), CLOUDLET_E_NOT_FOUND);
	assert_int_equal(cloudlet_base_import(&b, ctx, pkg.c_str(), nullptr), CLOUDLET_OK);
	assert_string_equal(b->id, base_id.c_str());
	assert_string_equal(b->name, "testbase");
	cloudlet_base_info_free(b);
	cloudlet_base_options full = CLOUDLET_BASE_OPTIONS_INIT;
	full.full_verify = 1;
	assert_int_equal(cloudlet_base_show(&b, ctx, "testbase", &full), CLOUDLET_OK);
	assert_string_equal(b->status, "ok");
	cloudlet_base_info_free(b);

	// A damaged package (one byte, in the middle) is refused; nothing stays.
	std::string bad = pkg + ".bad";
	std::string cmd = "cp '" + pkg + "' '" + bad + "'";
	assert_int_equal(system(cmd.c_str()), 0);
	FILE *f = fopen(bad.c_str(), "r+b");
	assert_non_null(f);
	fseek(f, st.st_size / 2, SEEK_SET);
	int c = fgetc(f);
	fseek(f, st.st_size / 2, SEEK_SET);
	fputc(c ^ 0x5a, f);
	fclose(f);
	size_t tmp_before = entries(store_dir + "/tmp");
	cloudlet_base_options o = CLOUDLET_BASE_OPTIONS_INIT;
	o.name = "other-name";
	assert_int_equal(cloudlet_base_import(nullptr, ctx, bad.c_str(), &o), CLOUDLET_E_CORRUPT);
	print_message("# damaged package: %s\n", cloudlet_last_error_message());
	assert_int_equal(entries(store_dir + "/tmp"), tmp_before);
	// Its header is intact, so inspect still reads it; only import hashes the parts.
	assert_int_equal(cloudlet_base_package_inspect(&pi, ctx, bad.c_str()), CLOUDLET_OK);
	cloudlet_base_info_free(pi);
	// A package whose manifest was changed no longer hashes to its ID.
	{
		std::string forged = pkg + ".forged";
		assert_int_equal(system(("cp '" + pkg + "' '" + forged + "'").c_str()), 0);
		FILE *g = fopen(forged.c_str(), "r+b");
		assert_non_null(g);
		fseek(g, 200, SEEK_SET); // inside the header's manifest text
		int x = fgetc(g);
		fseek(g, 200, SEEK_SET);
		fputc(x == '1' ? '2' : '1', g);
		fclose(g);
		assert_int_not_equal(cloudlet_base_package_inspect(&pi, ctx, forged.c_str()), CLOUDLET_OK);
		assert_null(pi);
		print_message("# forged manifest: %s\n", cloudlet_last_error_message());
		unlink(forged.c_str());
	}
	// And a truncated one.
	assert_int_equal(truncate(bad.c_str(), st.st_size - 100), 0);
	assert_int_equal(cloudlet_base_import(nullptr, ctx, bad.c_str(), &o), CLOUDLET_E_CORRUPT);
	assert_int_equal(entries(store_dir + "/tmp"), tmp_before);
	unlink(bad.c_str());
	unlink(pkg.c_str());
}

static void test_any_flipped_byte_is_caught(void **) {
	std::string dir = store_dir + "/bases/" + base_id;
	std::vector<std::string> files;
	DIR *d = opendir(dir.c_str());
	assert_non_null(d);
	while (struct dirent *e = readdir(d))
		if (e->d_name[0] != '.')
			files.push_back(e->d_name);
	closedir(d);
	assert_true(files.size() >= 12);
	for (const auto &file : files) {
		std::string path = dir + "/" + file;
		struct stat st;
		assert_int_equal(stat(path.c_str(), &st), 0);
		long off = st.st_size / 3;
		FILE *f = fopen(path.c_str(), "r+b");
		assert_non_null(f);
		fseek(f, off, SEEK_SET);
		int c = fgetc(f);
		fseek(f, off, SEEK_SET);
		fputc(c ^ 0x01, f);
		fclose(f);

		cloudlet_base_info *b = nullptr;
		assert_int_equal(cloudlet_base_show(&b, ctx, base_id.c_str(), nullptr), CLOUDLET_OK);
		if (strcmp(b->status, "corrupt") != 0)
			fail_msg("a flipped byte in %s went unnoticed", file.c_str());
		assert_non_null(strstr(b->problem, file.c_str()));
		cloudlet_base_info_free(b);
		cloudlet_resume_options o = CLOUDLET_RESUME_OPTIONS_INIT;
		std::string refused = refused_name();
	o.name = refused.c_str();
		assert_int_equal(cloudlet_base_resume(nullptr, ctx, base_id.c_str(), &o), CLOUDLET_E_CORRUPT);
		assert_false(domain_exists(refused_name().c_str()));

		f = fopen(path.c_str(), "r+b");
		fseek(f, off, SEEK_SET);
		fputc(c, f);
		fclose(f);
		assert_int_equal(cloudlet_base_show(&b, ctx, base_id.c_str(), nullptr), CLOUDLET_OK);
		assert_string_equal(b->status, "ok");
		cloudlet_base_info_free(b);
	}
}

static const char *cli_path;

static std::string run_cli(const std::string &args, int *status) {
	std::string cmd = std::string(cli_path) + " --store '" + store_dir + "' " + args + " 2>&1";
	int st = -1;
	std::string out = run_output(cmd, &st);
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return out;
}

static std::string json_field(const std::string &doc, const char *key) {
	json_object *j = json_tokener_parse(doc.c_str()), *v = nullptr;
	if (!j)
		fail_msg("not JSON: %s", doc.c_str());
	std::string s = json_object_object_get_ex(j, key, &v) ? json_object_get_string(v) : "";
	json_object_put(j);
	return s;
}

// The CLI over the same calls: JSON documents, exit 1 for a corrupt base.
static void test_cli(void **) {
	int status = 0;
	std::string out = run_cli("base list --json", &status);
	assert_int_equal(status, 0);
	assert_non_null(strstr(out.c_str(), base_id.c_str()));
	out = run_cli("base show testbase --verify --json", &status);
	assert_int_equal(status, 0);
	assert_string_equal(json_field(out, "status").c_str(), "ok");
	// --uuid: the domain gets the caller's UUID (orchestrators such as Nova
	// find their VMs by it), in canonical lower case.
	std::string uuid = new_uuid_text();
	std::string upper = uuid;
	for (char &ch : upper)
		ch = static_cast<char>(toupper(static_cast<unsigned char>(ch)));
	out = run_cli("base resume testbase --name " + cli_name() + " --uuid " + upper + " --json", &status);
	if (status != 0)
		fail_msg("base resume: %s", out.c_str());
	assert_string_equal(json_field(out, "name").c_str(), cli_name().c_str());
	assert_string_equal(json_field(out, "uuid").c_str(), uuid.c_str());
	virConnectPtr c = virConnectOpen("qemu:///system");
	virDomainPtr d = virDomainLookupByName(c, cli_name().c_str());
	assert_non_null(d);
	char got[VIR_UUID_STRING_BUFLEN];
	assert_int_equal(virDomainGetUUIDString(d, got), 0);
	assert_string_equal(got, uuid.c_str());
	// A UUID in use, or not a UUID: refused before anything is created.
	out = run_cli("base resume testbase --name " + cli_name() + "-2 --uuid " + uuid, &status);
	assert_int_not_equal(status, 0);
	assert_non_null(strstr(out.c_str(), "already exists"));
	out = run_cli("base resume testbase --name " + cli_name() + "-2 --uuid ../../etc/passwd", &status);
	assert_int_not_equal(status, 0);
	assert_false(domain_exists((cli_name() + "-2").c_str()));
	assert_int_not_equal(access((store_dir + "/instances/" + cli_name() + "-2").c_str(), F_OK), 0);
	// instance remove: refused while the domain runs, then the files go.
	std::string inst_dir = store_dir + "/instances/" + cli_name();
	out = run_cli("instance remove " + cli_name(), &status);
	assert_int_not_equal(status, 0);
	assert_non_null(strstr(out.c_str(), "still runs"));
	assert_int_equal(access(inst_dir.c_str(), F_OK), 0);
	virDomainDestroy(d);
	virDomainFree(d);
	virConnectClose(c);
	out = run_cli("instance remove " + cli_name() + " --json", &status);
	if (status != 0)
		fail_msg("instance remove: %s", out.c_str());
	assert_int_not_equal(access(inst_dir.c_str(), F_OK), 0);
	std::string xml = store_dir + "/bases/" + base_id + "/domain.xml";
	FILE *f = fopen(xml.c_str(), "ab");
	fputc(' ', f);
	fclose(f);
	out = run_cli("base show " + base_id.substr(0, 12), &status);
	assert_int_equal(status, 1);
	assert_non_null(strstr(out.c_str(), "corrupt"));
}

int main(int argc, char **argv) {
	cli_path = argc > 1 ? argv[1] : "cloudlet";
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create),
	    cmocka_unit_test(test_two_instances),
	    cmocka_unit_test(test_unusable_cpu_refused_up_front),
	    cmocka_unit_test(test_export_remove_import),
	    cmocka_unit_test(test_any_flipped_byte_is_caught),
	    cmocka_unit_test(test_cli),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
