// The domain XML rewrites of virt/base_xml.h, without libvirt: a running
// domain's live XML → a base's canonical XML (and what it refuses), the
// canonical XML → an instance's, the XML a synthesized VM is restored with
// (the launch VM's NICs, nothing else of its untrusted XML), and the NIC XML
// a NIC swap detaches and attaches. The fixture tests/data/domain-live-tcg.xml
// is written the way libvirt 9.0 reports the test guest live (secure,
// migratable: id, UUID, aliases, PCI addresses, backing chain, DAC label),
// with a second disk, an empty CD-ROM drive and a NIC on a network added.
#include "util/error.h"
#include "util/xml.h"
#include "virt/base_xml.h"

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet;

namespace {

std::string fixture(const char *name) {
	std::ifstream f(std::string(TEST_DATA_DIR) + "/" + name);
	std::stringstream ss;
	ss << f.rdbuf();
	assert_true(ss.str().size() > 0);
	return ss.str();
}

std::string live_xml() { return fixture("domain-live-tcg.xml"); }

// `text` with `from` (which must occur) replaced by `to`.
std::string edited(std::string text, const std::string &from, const std::string &to) {
	size_t at = text.find(from);
	if (at == std::string::npos)
		fail_msg("the fixture has no '%s'", from.c_str());
	return text.replace(at, from.size(), to);
}

// XPath questions about a document.
class Doc {
public:
	explicit Doc(const std::string &text) : doc_(xml::parse(text, "the document under test")) {}
	// The first match's string value; "<none>" if nothing matches.
	std::string value(const std::string &expr) const { return xml::value(doc_.get(), expr).value_or("<none>"); }
	size_t count(const std::string &expr) const { return xml::select(doc_.get(), expr).size(); }

private:
	xml::DocPtr doc_;
};

#define assert_value(doc, expr, expected) assert_string_equal((doc).value(expr).c_str(), expected)

// `f` throws an Error with `status` whose message contains `part`.
void assert_fails(const std::function<void()> &f, cloudlet_status status, const char *part) {
	try {
		f();
	} catch (const Error &e) {
		if (e.status() != status || !strstr(e.what(), part))
			fail_msg("failed with status %d and '%s'; expected %d and '%s'", e.status(), e.what(), status, part);
		return;
	}
	fail_msg("did not fail; expected '%s'", part);
}

virt::BaseSource base() { return virt::inspect_base_source(live_xml(), "core2duo"); }

virt::InstancePlan plan() {
	virt::InstancePlan p;
	p.name = "web-1a2b3c4d";
	p.uuid = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
	p.virt_type = "kvm";
	p.base_dir = "/store/bases/abc123";
	p.instance_dir = "/store/instances/web-1a2b3c4d";
	p.disks = {{"vda", p.instance_dir + "/disk-vda.qcow2", p.base_dir + "/disk-vda.raw"},
	           {"vdb", p.instance_dir + "/disk-vdb.qcow2", p.base_dir + "/disk-vdb.raw"}};
	return p;
}

} // namespace

// What a base keeps of the running domain: its machine, CPU, memory and
// devices, with its disks and boot files named relative to the base and
// nothing of its identity or host-side state.
static void test_base_source_and_canonical_xml(void **) {
	virt::BaseSource b = base();
	assert_string_equal(b.virt_type.c_str(), "qemu");
	assert_string_equal(b.machine.c_str(), "pc-i440fx-7.2");
	assert_string_equal(b.cpu_model.c_str(), "core2duo");
	assert_int_equal(b.memory_bytes, 256ull << 20);
	assert_string_equal(b.kernel.c_str(), "/var/cache/cloudlet-test/guest/vmlinuz");
	assert_string_equal(b.initrd.c_str(), "/var/cache/cloudlet-test/guest/initrd.img");
	assert_int_equal(b.disks.size(), 2); // the empty CD-ROM drive is no disk of the base
	assert_string_equal(b.disks[0].target.c_str(), "vda");
	assert_string_equal(b.disks[0].source.c_str(), "/tmp/cltest-4711/disk.qcow2");
	assert_string_equal(b.disks[0].format.c_str(), "qcow2");
	assert_string_equal(b.disks[0].file.c_str(), "disk-vda.raw");
	assert_string_equal(b.disks[1].target.c_str(), "vdb");
	assert_string_equal(b.disks[1].source.c_str(), "/tmp/cltest-4711/data.raw");
	assert_string_equal(b.disks[1].format.c_str(), "raw");
	assert_string_equal(b.disks[1].file.c_str(), "disk-vdb.raw");

	Doc c(b.canonical_xml);
	// Identity and host-side state belong to instances.
	assert_value(c, "/domain/name", "cloudlet-base");
	assert_int_equal(c.count("/domain/uuid"), 0);
	assert_int_equal(c.count("/domain/@id"), 0);
	assert_int_equal(c.count("/domain/seclabel"), 0);
	assert_int_equal(c.count("//alias"), 0);
	assert_int_equal(c.count("/domain/devices/interface/target"), 0);
	// Disks: the base's raw copies, no backing chain.
	assert_value(c, "/domain/devices/disk[target/@dev='vda']/source/@file", "disk-vda.raw");
	assert_value(c, "/domain/devices/disk[target/@dev='vda']/driver/@type", "raw");
	assert_value(c, "/domain/devices/disk[target/@dev='vdb']/source/@file", "disk-vdb.raw");
	assert_value(c, "/domain/devices/disk[target/@dev='vdb']/driver/@discard", "unmap");
	assert_int_equal(c.count("/domain/devices/disk/backingStore"), 0);
	assert_int_equal(c.count("/domain/devices/disk[@device='cdrom']"), 1);
	assert_value(c, "/domain/os/kernel", "kernel");
	assert_value(c, "/domain/os/initrd", "initrd");
	assert_value(c, "/domain/os/cmdline", "console=ttyS0 panic=-1");
	// What the memory state depends on stays as it ran.
	assert_value(c, "/domain/@type", "qemu");
	assert_value(c, "/domain/os/type/@machine", "pc-i440fx-7.2");
	assert_value(c, "/domain/cpu/@mode", "custom");
	assert_value(c, "/domain/cpu/model", "core2duo");
	assert_value(c, "/domain/memory", "262144");
	assert_value(c, "/domain/devices/interface/mac/@address", "52:54:00:6b:3c:58");
	assert_value(c, "/domain/devices/interface/model/@type", "virtio");
	assert_value(c, "/domain/devices/interface/address/@slot", "0x03");
	assert_value(c, "/domain/devices/interface/source/@network", "default");
	assert_value(c, "/domain/devices/serial/source/@path", "/tmp/cltest-4711/console.log");

	// Canonical means canonical: the base's XML read as a domain's gives itself.
	assert_string_equal(virt::inspect_base_source(b.canonical_xml, "core2duo").canonical_xml.c_str(),
	                    b.canonical_xml.c_str());
}

// Each refusal names the domain and what to change, before anything is done.
static void test_base_source_refusals(void **) {
	const std::string live = live_xml();
	const std::string cpu = "<cpu mode='custom' match='exact' check='none'>\n"
	                        "    <model fallback='forbid'>core2duo</model>\n  </cpu>";
	const char *prefix = "domain cloudlet-test-4711 cannot become a base VM: ";
	auto refused = [&](const std::string &xml, const std::string &cpu_model, const std::string &why) {
		assert_fails([&] { virt::inspect_base_source(xml, cpu_model); }, CLOUDLET_E_INVALID_ARG,
		             (prefix + why).c_str());
	};
	refused(edited(live, cpu, "<cpu mode='host-model' check='partial'/>"), "core2duo",
	        "it runs CPU mode 'host-model', but bases must run the enforced model 'core2duo'");
	refused(live, "Nehalem", "it runs CPU model 'core2duo', but bases must run the enforced model 'Nehalem'");
	refused(edited(live, "<acpi/>", ""), "core2duo", "ACPI is off");
	refused(edited(live, "<boot dev='hd'/>",
	               "<boot dev='hd'/><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>"),
	        "core2duo", "firmware loader/NVRAM files are not supported");
	refused(edited(live, "<target dev='hdc' bus='ide'/>", "<source file='/tmp/install.iso'/><target dev='hdc'/>"),
	        "core2duo", "its cdrom has media inserted; eject it first");
	refused(edited(live, "<disk type='file' device='disk'>\n      <driver name='qemu' type='raw' discard='unmap'/>\n"
	                     "      <source file='/tmp/cltest-4711/data.raw' index='1'/>",
	               "<disk type='network' device='disk'>\n      <driver name='qemu' type='raw'/>\n"
	               "      <source protocol='nbd' name='data'><host name='10.0.0.1' port='10809'/></source>"),
	        "core2duo", "disk 1 is not a file-backed image (type 'network')");
	refused(edited(live, "<target dev='vdb' bus='virtio'/>", ""), "core2duo", "a disk has no target device name");
	// Not XML at all: the document's fault, not the domain's.
	assert_fails([&] { virt::inspect_base_source(live.substr(0, live.size() / 2), "core2duo"); }, CLOUDLET_E_CORRUPT,
	             "domain XML: cannot parse XML");
}

// An instance: the plan's identity and virt type, copy-on-write disks over
// the base's raw files (never relabelled), boot files from the base, and
// every host-side path its own; the CPU, memory and NIC stay the base's.
static void test_instance_xml(void **) {
	virt::InstancePlan p = plan();
	Doc i(virt::instance_xml(base().canonical_xml, p));
	assert_value(i, "/domain/@type", "kvm");
	assert_value(i, "/domain/name", "web-1a2b3c4d");
	assert_value(i, "/domain/uuid", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9");
	assert_int_equal(i.count("/domain/uuid"), 1);
	assert_value(i, "/domain/os/kernel", "/store/bases/abc123/kernel");
	assert_value(i, "/domain/os/initrd", "/store/bases/abc123/initrd");
	for (const char *t : {"vda", "vdb"}) {
		std::string disk = std::string("/domain/devices/disk[target/@dev='") + t + "']";
		std::string overlay = p.instance_dir + "/disk-" + t + ".qcow2", backing = p.base_dir + "/disk-" + t + ".raw";
		assert_value(i, disk + "/source/@file", overlay.c_str());
		assert_value(i, disk + "/driver/@type", "qcow2");
		assert_value(i, disk + "/backingStore/@type", "file");
		assert_value(i, disk + "/backingStore/format/@type", "raw");
		assert_value(i, disk + "/backingStore/source/@file", backing.c_str());
		assert_value(i, disk + "/backingStore/source/seclabel/@model", "dac");
		assert_value(i, disk + "/backingStore/source/seclabel/@relabel", "no");
		assert_int_equal(i.count(disk + "/backingStore/backingStore"), 1); // the chain ends there
	}
	// Character devices and logs, numbered in document order.
	assert_value(i, "/domain/devices/serial/source/@path", "/store/instances/web-1a2b3c4d/0-console.log");
	assert_value(i, "/domain/devices/console/source/@path", "/store/instances/web-1a2b3c4d/1-console.log");
	assert_value(i, "/domain/devices/channel/source/@path", "/store/instances/web-1a2b3c4d/2-shell.sock");
	assert_value(i, "/domain/devices/serial/log/@file",
	             "/store/instances/web-1a2b3c4d/3-cloudlet-test-4711-serial0.log");
	assert_value(i, "/domain/devices/channel/source/@mode", "bind");
	assert_value(i, "/domain/cpu/model", "core2duo");
	assert_value(i, "/domain/os/type/@machine", "pc-i440fx-7.2");
	assert_value(i, "/domain/memory", "262144");
	assert_value(i, "/domain/devices/interface/mac/@address", "52:54:00:6b:3c:58"); // swapped after the restore
	assert_int_equal(i.count("/domain/seclabel"), 0);

	// A disk of the XML the base does not hold.
	p.disks.pop_back();
	assert_fails([&] { virt::instance_xml(base().canonical_xml, p); }, CLOUDLET_E_CORRUPT,
	             "base domain XML has disk 'vdb' that the base does not hold");
}

// The launch VM's XML is untrusted: only its NICs' MAC, model and PCI
// address are taken, each checked; everything else is the instance's.
static void test_synthesis_xml(void **) {
	const std::string canonical = base().canonical_xml;
	virt::InstancePlan p = plan();
	const std::string nic1 = "<interface type='bridge'><mac address='fa:16:3e:12:34:56'/><source bridge='br-evil'/>"
	                         "<target dev='tap-launch'/><model type='e1000'/><alias name='net0'/>"
	                         "<address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/></interface>";
	const std::string nic2 = "<interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='other'/>"
	                         "<model type='virtio'/><address type='pci' bus='0x00' slot='0x08'/></interface>";
	auto launch = [](const std::string &nics) {
		return "<domain type='kvm'><name>launch-vm</name><uuid>11111111-2222-4333-8444-555555555555</uuid>"
		       "<cpu mode='host-passthrough'/><devices><emulator>/tmp/evil-qemu</emulator>"
		       "<disk type='file' device='disk'><source file='/etc/shadow'/><target dev='vda'/></disk>" +
		       nics + "</devices></domain>";
	};

	Doc s(virt::synthesis_xml(canonical, launch(nic1 + nic2), p));
	assert_value(s, "/domain/name", "web-1a2b3c4d");
	assert_value(s, "/domain/uuid", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9");
	assert_value(s, "/domain/@type", "kvm");
	assert_value(s, "/domain/cpu/model", "core2duo");
	assert_value(s, "/domain/devices/emulator", "/usr/bin/qemu-system-x86_64");
	assert_value(s, "/domain/devices/disk[target/@dev='vda']/source/@file",
	             "/store/instances/web-1a2b3c4d/disk-vda.qcow2");
	assert_int_equal(s.count("/domain/devices/disk[@device='disk']"), 2);
	assert_int_equal(s.count("/domain/devices/interface"), 2);
	// The base's backend (its network), the launch's MAC, model and address.
	assert_value(s, "/domain/devices/interface[1]/@type", "network");
	assert_value(s, "/domain/devices/interface[1]/source/@network", "default");
	assert_value(s, "/domain/devices/interface[1]/mac/@address", "fa:16:3e:12:34:56");
	assert_value(s, "/domain/devices/interface[1]/model/@type", "e1000");
	assert_value(s, "/domain/devices/interface[1]/address/@slot", "0x07");
	assert_value(s, "/domain/devices/interface[1]/address/@function", "0x0");
	assert_value(s, "/domain/devices/interface[2]/source/@network", "default");
	assert_value(s, "/domain/devices/interface[2]/mac/@address", "52:54:00:aa:bb:cc");
	assert_value(s, "/domain/devices/interface[2]/model/@type", "virtio");
	assert_value(s, "/domain/devices/interface[2]/address/@slot", "0x08");
	assert_int_equal(s.count("/domain/devices/interface[2]/address/@function"), 0); // libvirt's default
	assert_int_equal(s.count("/domain/devices/interface/target"), 0);
	assert_int_equal(s.count("/domain/devices/interface/alias"), 0);
	assert_int_equal(s.count("//source[@bridge='br-evil']"), 0);

	// Nothing plugged in at launch: the instance's XML, the base's NIC as it is.
	assert_string_equal(virt::synthesis_xml(canonical, launch(""), p).c_str(),
	                    virt::instance_xml(canonical, p).c_str());
	// NICs at launch but none in the base to model them on.
	std::string no_nic = base().canonical_xml;
	size_t from = no_nic.find("<interface"), to = no_nic.find("</interface>") + strlen("</interface>");
	no_nic.erase(from, to - from);
	assert_fails([&] { virt::synthesis_xml(no_nic, launch(nic1), p); }, CLOUDLET_E_UNSUPPORTED,
	             "the launch VM has NICs but its base has none");
	// A launch XML that would smuggle in something else is refused.
	auto bad_nic = [&](const std::string &from, const std::string &to, const char *why) {
		std::string l = launch(edited(nic1, from, to));
		assert_fails([&] { virt::synthesis_xml(canonical, l, p); }, CLOUDLET_E_CORRUPT, why);
	};
	bad_nic("fa:16:3e:12:34:56", "01:00:5e:00:00:01", "a NIC with MAC '01:00:5e:00:00:01'");
	bad_nic("fa:16:3e:12:34:56", "fa:16:3e:12:34", "a NIC with MAC");
	bad_nic("type='e1000'", "type='ne2k_pci'", "a NIC of model 'ne2k_pci'");
	bad_nic("slot='0x07'", "slot='0x107'", "not a plain PCI address");
	bad_nic("type='pci' domain", "type='ccw' domain", "not a plain PCI address");
	assert_fails([&] { virt::synthesis_xml(canonical, launch(nic1).substr(0, 80), p); }, CLOUDLET_E_CORRUPT,
	             "the overlay's launch domain XML: cannot parse XML");
}

// A NIC swap detaches the live <interface> as it is and attaches a fresh
// copy: the same backend and model, no MAC, tap, address or alias.
static void test_domain_nics(void **) {
	std::vector<virt::NicXml> nics = virt::domain_nics(live_xml());
	assert_int_equal(nics.size(), 1);
	assert_string_equal(nics[0].mac.c_str(), "52:54:00:6b:3c:58");
	Doc current(nics[0].current);
	assert_value(current, "/interface/mac/@address", "52:54:00:6b:3c:58");
	assert_value(current, "/interface/target/@dev", "vnet3");
	assert_value(current, "/interface/address/@slot", "0x03");
	Doc fresh(nics[0].fresh);
	assert_value(fresh, "/interface/@type", "network");
	assert_value(fresh, "/interface/source/@network", "default");
	assert_value(fresh, "/interface/model/@type", "virtio");
	for (const char *gone : {"/interface/mac", "/interface/target", "/interface/address", "/interface/alias"})
		assert_int_equal(fresh.count(gone), 0);
	assert_int_equal(virt::domain_nics(base().canonical_xml).size(), 1);
	assert_int_equal(virt::domain_nics("<domain><devices/></domain>").size(), 0);
}

int main() {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_base_source_and_canonical_xml),
	    cmocka_unit_test(test_base_source_refusals),
	    cmocka_unit_test(test_instance_xml),
	    cmocka_unit_test(test_synthesis_xml),
	    cmocka_unit_test(test_domain_nics),
	};
	return cmocka_run_group_tests_name("virt-xml", tests, nullptr, nullptr);
}
