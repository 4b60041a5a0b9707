// What libvirt says this host offers: per virt type (domain capabilities,
// CPU model usability) and ACPI hot-plug support (host capabilities).
#pragma once

#include "virt/connection.h"

#include <cloudlet.h>

#include <string>

namespace cloudlet::virt {

struct VirtTypeCaps {
	std::string virt_type;           // "kvm" or "qemu"
	cloudlet_tristate offered = CLOUDLET_UNKNOWN;
	std::string offered_detail;      // libvirt's refusal when not offered
	std::string emulator;
	std::string machine;             // canonical type behind "pc"
	cloudlet_tristate cpu_model_usable = CLOUDLET_UNKNOWN;
	std::string cpu_model_detail;
};

// Asks libvirt for the domain capabilities of `virt_type` (x86_64, machine
// "pc") and whether `cpu_model` is usable there. QEMU's own verdict
// (usable='yes' in domain capabilities, from query-cpu-definitions for that
// accelerator) decides; libvirt's CPU comparison is added to the detail,
// since it names the missing features when there are any.
VirtTypeCaps query_virt_type(const Connection &conn, const std::string &virt_type,
                             const std::string &cpu_model);

// The pure part of query_virt_type: reads a domain capabilities document.
// Throws CLOUDLET_E_CORRUPT on malformed XML.
VirtTypeCaps parse_domain_caps(const std::string &text, const std::string &virt_type,
                               const std::string &cpu_model);

struct AcpiCaps {
	cloudlet_tristate hotplug = CLOUDLET_UNKNOWN;
	std::string detail;
};

// NIC hot-(un)plug on the i440fx "pc" machine goes through ACPI PCI
// hot-plug (PIIX4), which needs the <acpi/> feature. Decided from the host
// capabilities (ACPI toggle for x86_64 guests) and the machine type.
AcpiCaps query_acpi_hotplug(const Connection &conn, const std::string &machine);

} // namespace cloudlet::virt
