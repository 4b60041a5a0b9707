// Domain XML for base VMs (docs/base-vms.md), edited as XML trees:
//  - what a running domain must satisfy to become a base (the enforced CPU
//    model, ACPI for NIC hot-plug, file-backed disks, direct kernel boot
//    files we can copy), and the canonical XML stored with the base;
//  - the XML of a new instance of a base: fresh name and UUID, its own
//    copy-on-write disks, and every host-side path made its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet::virt {

struct BaseDisk {
	std::string target;  // "vda"
	std::string source;  // host path of the running domain's image
	std::string format;  // "raw", "qcow2" ...
	std::string file;    // name in the base folder ("disk-vda.raw")
};

struct BaseSource {
	std::string virt_type, machine, cpu_model;
	uint64_t memory_bytes = 0;
	std::vector<BaseDisk> disks;
	std::string kernel, initrd; // host paths; "" if the domain boots from disk
	std::string canonical_xml;  // what the base stores
};

// Checks a domain's live XML (secure, migratable) and derives the base's
// canonical XML. Throws CLOUDLET_E_INVALID_ARG naming what to change when
// the domain cannot become a base.
BaseSource inspect_base_source(const std::string &live_xml, const std::string &enforced_cpu_model);

struct InstanceDisk {
	std::string target;
	std::string overlay;   // the instance's qcow2
	std::string backing;   // the base's raw file
};

struct InstancePlan {
	std::string name, uuid, virt_type;
	std::string base_dir, instance_dir;
	std::vector<InstanceDisk> disks;
	// For synthesis_xml: an <interface> element whose backend (type, source,
	// driver) the restored NICs take instead of the base's NIC's: the
	// network this host gives the instance. QEMU's NIC state must find the
	// backend it was saved with (a launch VM on a tap saved vnet_hdr=on,
	// which a user-mode backend refuses), and the caller's network is the
	// one this host provides. "": the base's NIC.
	std::string nic_backend;
};

// The instance's XML from the base's canonical XML.
std::string instance_xml(const std::string &canonical_xml, const InstancePlan &plan);

// The XML a synthesized VM is restored with. Everything comes from the
// base's canonical XML (local, trusted) through instance_xml(), except the
// NICs: the launch VM's device state holds the NICs plugged in after its
// resume, so they must be restored at the same PCI address with the same
// MAC and model. Only those three facts are taken from the overlay's
// (untrusted) launch XML, each checked; the rest of each NIC (type, network)
// is plan.nic_backend's, else the base's. Throws CLOUDLET_E_CORRUPT for a malformed launch XML and
// CLOUDLET_E_UNSUPPORTED when the launch VM has NICs but the base none.
std::string synthesis_xml(const std::string &base_canonical_xml, const std::string &launch_xml,
                          const InstancePlan &plan);

// The live <interface> elements of a domain, serialised (for detaching) and
// as a fresh copy without MAC, target and address (for attaching).
struct NicXml {
	std::string current, fresh, mac;
};
std::vector<NicXml> domain_nics(const std::string &live_xml);

} // namespace cloudlet::virt
