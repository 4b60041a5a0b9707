// Internals reached through the static library: the pure parts of the
// libvirt adapter, the context's settings resolution and handoff's
// auto-converge steps. Fixtures under
// tests/data/ are real documents captured from libvirt 9.0 / QEMU 7.2.
#include "engine/convergence.h"
#include "ops/context.h"
#include "util/error.h"
#include "util/xml.h"
#include "virt/base_xml.h"
#include "virt/boot_probe.h"
#include "virt/guest_ram.h"
#include "virt/host_caps.h"
#include "virt/nic_swap.h"
#include "virt/page_ledger.h"

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <set>
#include <vector>
#include <sstream>
#include <string>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet;

static std::string fixture(const char *name) {
	std::ifstream f(std::string(TEST_DATA_DIR) + "/" + name);
	std::stringstream ss;
	ss << f.rdbuf();
	assert_true(ss.str().size() > 0);
	return ss.str();
}

static void test_domcaps_tcg(void **) {
	auto c = virt::parse_domain_caps(fixture("domcaps-qemu-9.0-tcg.xml"), "qemu", "core2duo");
	assert_int_equal(c.offered, CLOUDLET_YES);
	assert_string_equal(c.emulator.c_str(), "/usr/bin/qemu-system-x86_64");
	assert_string_equal(c.machine.c_str(), "pc-i440fx-7.2");
	assert_int_equal(c.cpu_model_usable, CLOUDLET_YES);
	// phenom is listed usable='no' under TCG in the same document
	auto p = virt::parse_domain_caps(fixture("domcaps-qemu-9.0-tcg.xml"), "qemu", "phenom");
	assert_int_equal(p.cpu_model_usable, CLOUDLET_NO);
	auto x = virt::parse_domain_caps(fixture("domcaps-qemu-9.0-tcg.xml"), "qemu", "no-such-cpu");
	assert_int_equal(x.cpu_model_usable, CLOUDLET_NO);
	assert_non_null(strstr(x.cpu_model_detail.c_str(), "does not know"));
}

static void test_domcaps_kvm(void **) {
	auto c = virt::parse_domain_caps(fixture("domcaps-qemu-9.0-kvm.xml"), "kvm", "core2duo");
	assert_int_equal(c.cpu_model_usable, CLOUDLET_NO);
	assert_non_null(strstr(c.cpu_model_detail.c_str(), "cannot provide core2duo under kvm"));
}

static void test_domcaps_malformed(void **) {
	std::string doc = fixture("domcaps-qemu-9.0-tcg.xml");
	for (size_t cut : {size_t(0), size_t(1), size_t(100), doc.size() / 2, doc.size() - 20}) {
		try {
			virt::parse_domain_caps(doc.substr(0, cut), "qemu", "core2duo");
			fail_msg("a document cut at %zu parsed", cut);
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CORRUPT);
			assert_non_null(strstr(e.what(), "domain capabilities (qemu)"));
		}
	}
	// Well-formed but not domain capabilities: nothing usable, no crash.
	auto c = virt::parse_domain_caps("<other/>", "qemu", "core2duo");
	assert_int_equal(c.cpu_model_usable, CLOUDLET_NO);
	assert_string_equal(c.machine.c_str(), "");
}

static void test_classify_console(void **) {
	std::string ev;
	assert_string_equal(virt::classify_console("", &ev).c_str(), "");
	assert_string_equal(virt::classify_console("[    0.000000] Linux version 6.1.0\n[ 0.1] x\n", &ev).c_str(), "");
	std::string ok = "[    0.0] Linux version 6.1\n[    2.6] Kernel panic - not syncing: VFS: Unable to mount "
	                 "root fs on unknown-block(0,0)\n[    2.7] CPU: 0\n";
	assert_string_equal(virt::classify_console(ok, &ev).c_str(), "ok");
	assert_non_null(strstr(ev.c_str(), "VFS: Unable to mount root fs"));
	std::string early = "[    0.0] Linux version 6.1\n[    0.5] Kernel panic - not syncing: Attempted to kill the idle task!\n";
	assert_string_equal(virt::classify_console(early, &ev).c_str(), "panic");
	assert_string_equal(ev.c_str(), "[    0.5] Kernel panic - not syncing: Attempted to kill the idle task!");
	assert_string_equal(virt::classify_console("x\r\n[ 3.0] Run /init as init process\r\n", &ev).c_str(), "ok");
	assert_string_equal(ev.c_str(), "[ 3.0] Run /init as init process");
	// Read while QEMU is mid-line: an unfinished line decides nothing yet.
	std::string partial = "[    0.0] Linux version 6.1\n[    3.3] Kernel panic - not syncing: VFS: Unable to mount";
	assert_string_equal(virt::classify_console(partial, &ev).c_str(), "");
	assert_string_equal(virt::classify_console(partial + " root fs on unknown-block(0,0)\n", &ev).c_str(), "ok");
}

static void test_settings_resolution(void **) {
	ops::Settings s;
	s.store_dir = "/tmp/store";
	auto r = ops::resolve_settings(s);
	assert_string_equal(r.cpu_model.c_str(), "core2duo");
	assert_true(r.libvirt_uri == "qemu:///system" || r.libvirt_uri == "qemu:///session");
	assert_true(r.worker_threads >= 1);
	for (const char *bad : {"a b", "core2duo;", "x/y", "<model>"}) {
		ops::Settings b;
		b.cpu_model = bad;
		b.store_dir = "/tmp/store";
		try {
			ops::resolve_settings(b);
			fail_msg("cpu model '%s' accepted", bad);
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_INVALID_ARG);
		}
	}
}

// The throttle goes where the guest dirties at most half of what the
// pipeline moves, in one step; slow dirtiers keep QEMU's defaults.
static void test_throttle_steps(void **) {
	using engine::throttle_steps;
	assert_false(throttle_steps(0, 0, 3e6).has_value());   // nothing measured yet
	assert_false(throttle_steps(8e6, 0, 0).has_value());
	// 8 MB/s dirtied, 3 MB/s moved: run ≤ 1.5/8 of the time → 82 %.
	auto s = throttle_steps(8e6, 0, 3e6);
	assert_true(s.has_value());
	assert_int_equal(s->initial, 82);
	// Measured at 50 % throttle, the same guest shows 4 MB/s: same target,
	// reached by one increment from 50.
	s = throttle_steps(4e6, 50, 3e6);
	assert_int_equal(s->initial, 82);
	assert_int_equal(s->increment, 32);
	// A guest dirtying less than half the link: QEMU's defaults.
	s = throttle_steps(1e6, 0, 3e6);
	assert_int_equal(s->initial, 20);
	assert_int_equal(s->increment, 10);
	// Far beyond the link: capped at QEMU's maximum.
	s = throttle_steps(1e9, 0, 1e6);
	assert_int_equal(s->initial, 99);
	// Already past the target: the smallest increment, never a cut.
	s = throttle_steps(1e6, 90, 3e6);
	assert_int_equal(s->increment, 10);
}

// The ledger hands over exactly the pages whose real content is not the
// newest version the stream gave (or that the stream never gave), whatever
// the thread count, and nothing for a memory that matches.
static void test_page_ledger(void **) {
	const uint64_t pages = 1000; // not a multiple of the 256-page read stripes
	std::vector<uint8_t> mem(pages * 4096);
	for (size_t i = 0; i < mem.size(); i++)
		mem[i] = static_cast<uint8_t>(i * 7 + i / 4096);
	for (unsigned threads : {1u, 2u, 3u}) {
		virt::PageLedger l(pages + 10);
		for (uint64_t p = 0; p < pages; p++)
			if (p != 500) // never sent
				l.record(p + 10, mem.data() + p * 4096, 0);
		std::vector<uint8_t> real = mem;
		real[3 * 4096 + 17] ^= 1;    // a write the stream missed
		real[999 * 4096 + 4095] ^= 0x80;
		l.record(10 + 700, nullptr, 0); // the stream's last word: a zero page
		std::set<uint64_t> fixed;
		auto read = [&](uint64_t off, uint8_t *buf, size_t n) {
			assert_true(off + n <= real.size());
			memcpy(buf, real.data() + off, n);
		};
		uint64_t n = l.reconcile(10, pages, read, [&](uint64_t linear, const uint8_t *d) {
			assert_memory_equal(d, real.data() + (linear - 10) * 4096, 4096);
			fixed.insert(linear);
		}, threads);
		assert_int_equal(n, 4);
		assert_true((fixed == std::set<uint64_t>{13, 510, 710, 1009}));
		// After the fixes are recorded, the same memory needs nothing.
		for (uint64_t p : fixed)
			l.record(p, real.data() + (p - 10) * 4096, 0);
		assert_int_equal(l.reconcile(10, pages, read, [](uint64_t, const uint8_t *) { fail(); }, threads), 0);
	}
	// The paused VM hashed while QEMU's final pass still streams: versions
	// recorded after hash_paused() count, and its hashes are used.
	{
		virt::PageLedger l(pages);
		for (uint64_t p = 0; p < pages; p++)
			l.record(p, p == 42 ? nullptr : mem.data() + p * 4096, 0); // page 42: an old version
		std::vector<uint8_t> real = mem;
		real[7 * 4096] ^= 1; // the final pass will bring page 7; nothing brings page 9
		real[9 * 4096 + 100] ^= 1;
		uint64_t reads = 0;
		auto read = [&](uint64_t off, uint8_t *buf, size_t n) {
			reads += n;
			memcpy(buf, real.data() + off, n);
		};
		l.hash_paused(0, pages, read, 2);
		assert_int_equal(reads, pages * 4096);
		l.record(7, real.data() + 7 * 4096, 0); // the final pass
		std::set<uint64_t> fixed;
		reads = 0;
		assert_int_equal(l.reconcile(0, pages, read, [&](uint64_t linear, const uint8_t *) { fixed.insert(linear); }), 2);
		assert_true((fixed == std::set<uint64_t>{9, 42}));
		assert_int_equal(reads, 2 * 4096); // only the two pages fixed were read again
		// The VM ran after the hashes: forgotten, the range is hashed anew.
		real[11 * 4096] ^= 1;
		l.forget_paused();
		fixed.clear();
		assert_int_equal(l.reconcile(0, pages, read, [&](uint64_t linear, const uint8_t *) { fixed.insert(linear); }), 3);
		assert_true((fixed == std::set<uint64_t>{9, 11, 42}));
		// A stopped hash_paused() leaves nothing that reconcile() would trust.
		std::atomic<bool> stop{true};
		real[13 * 4096] ^= 1;
		l.hash_paused(0, pages, read, 2, &stop);
		assert_int_equal(l.reconcile(0, pages, read, [](uint64_t, const uint8_t *) {}), 4);
	}
	virt::PageLedger l(4);
	assert_int_equal(l.reconcile(0, 0, [](uint64_t, uint8_t *, size_t) { fail(); }, [](uint64_t, const uint8_t *) {}), 0);
	bool threw = false;
	try {
		l.reconcile(2, 3, [](uint64_t, uint8_t *, size_t) {}, [](uint64_t, const uint8_t *) {});
	} catch (const Error &) {
		threw = true;
	}
	assert_true(threw);
}

// HMP's gpa2hva answer, as QEMU 7.2 prints it.
static void test_parse_gpa2hva(void **) {
	using virt::parse_gpa2hva;
	assert_int_equal(parse_gpa2hva("Host virtual address for 0x0 (pc.ram) is 0x7ff13be00000\r\n", "pc.ram"),
	                 0x7ff13be00000ull);
	assert_int_equal(parse_gpa2hva("Host virtual address for 0x0 (pc.ram) is 0x7ff13be00000\r\n", "pc.bios"), 0);
	assert_int_equal(parse_gpa2hva("No memory is mapped at address 0x0\r\n", "pc.ram"), 0);
	assert_int_equal(parse_gpa2hva("Host virtual address for 0x0 (pc.ram) is 0xzz", "pc.ram"), 0);
	assert_int_equal(parse_gpa2hva("", "pc.ram"), 0);
}

// A launch VM's NICs are restored with the launch's MAC, model and PCI
// address, on the backend of the NIC asked for (Nova's tap on a bridge),
// else on the base's: QEMU's saved virtio-net state of a VM that ran on a
// tap needs a tap again (vnet_hdr).
static void test_synthesis_nic_backend(void **) {
	const std::string base = "<domain type='qemu'><name>cloudlet-base</name><devices>"
	                         "<interface type='user'><model type='virtio'/></interface></devices></domain>";
	const std::string launch = "<domain><devices><interface type='bridge'><mac address='fa:16:3e:00:00:01'/>"
	                           "<source bridge='brq-old'/><target dev='tap-old'/><model type='virtio'/>"
	                           "<address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/>"
	                           "</interface></devices></domain>";
	cloudlet::virt::InstancePlan plan;
	plan.name = "i";
	plan.uuid = "00000000-0000-0000-0000-000000000001";
	plan.virt_type = "qemu";
	auto nic_of = [](const std::string &xml) {
		auto doc = cloudlet::xml::parse(xml, "test");
		auto v = cloudlet::xml::select(doc.get(), "/domain/devices/interface");
		assert_int_equal(v.size(), 1);
		auto get = [&](const char *e) { return cloudlet::xml::value(doc.get(), e).value_or(""); };
		return std::vector<std::string>{get("/domain/devices/interface/@type"),
		                                get("/domain/devices/interface/source/@bridge"),
		                                get("/domain/devices/interface/mac/@address"),
		                                get("/domain/devices/interface/model/@type"),
		                                get("/domain/devices/interface/address/@slot"),
		                                get("/domain/devices/interface/target/@dev")};
	};
	// No request: the base's backend.
	auto v = nic_of(cloudlet::virt::synthesis_xml(base, launch, plan));
	assert_true((v == std::vector<std::string>{"user", "", "fa:16:3e:00:00:01", "virtio", "0x07", ""}));
	// Nova's <interface>: its backend; its MAC and tap name are the fresh NIC's, not the restored one's.
	cloudlet::virt::NicRequest req;
	req.nic_xml = "<interface type='bridge'><mac address='fa:16:3e:99:99:99'/><source bridge='brq-new'/>"
	              "<target dev='tap-new'/><model type='virtio'/></interface>";
	plan.nic_backend = cloudlet::virt::nic_backend(req);
	v = nic_of(cloudlet::virt::synthesis_xml(base, launch, plan));
	assert_true((v == std::vector<std::string>{"bridge", "brq-new", "fa:16:3e:00:00:01", "virtio", "0x07", ""}));
	// A libvirt network by name.
	req = {};
	req.network = "default";
	plan.nic_backend = cloudlet::virt::nic_backend(req);
	auto doc = cloudlet::xml::parse(cloudlet::virt::synthesis_xml(base, launch, plan), "test");
	assert_string_equal(cloudlet::xml::value(doc.get(), "/domain/devices/interface/@type").value_or("").c_str(), "network");
	assert_string_equal(cloudlet::xml::value(doc.get(), "/domain/devices/interface/source/@network").value_or("").c_str(),
	                    "default");
	// Not an <interface>: refused.
	plan.nic_backend = "<disk/>";
	try {
		cloudlet::virt::synthesis_xml(base, launch, plan);
		fail_msg("a backend that is not an <interface> was accepted");
	} catch (const cloudlet::Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_INVALID_ARG);
	}
}

int main() {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_domcaps_tcg),
	    cmocka_unit_test(test_domcaps_kvm),
	    cmocka_unit_test(test_domcaps_malformed),
	    cmocka_unit_test(test_classify_console),
	    cmocka_unit_test(test_settings_resolution),
	    cmocka_unit_test(test_throttle_steps),
	    cmocka_unit_test(test_page_ledger),
	    cmocka_unit_test(test_parse_gpa2hva),
	    cmocka_unit_test(test_synthesis_nic_backend),
	};
	return cmocka_run_group_tests_name("internal", tests, nullptr, nullptr);
}
