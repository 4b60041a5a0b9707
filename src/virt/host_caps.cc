#include "virt/host_caps.h"

#include "util/error.h"
#include "util/xml.h"

#include <libvirt/virterror.h>

namespace cloudlet::virt {

namespace {

// libvirt's comparison of the model against what the hypervisor can give,
// e.g. "Host CPU does not provide required features: vme".
std::string compare_cpu(const Connection &conn, const std::string &virt_type,
                        const std::string &machine, const std::string &cpu_model,
                        bool *compatible) {
	auto doc = xml::new_doc("cpu");
	xmlNode *cpu = xmlDocGetRootElement(doc.get());
	xml::set_attr(cpu, "mode", "custom");
	xml::set_attr(cpu, "match", "exact");
	xml::add(cpu, "model", cpu_model, {{"fallback", "forbid"}});
	std::string cpu_xml = xml::to_string(doc.get());
	int r = virConnectCompareHypervisorCPU(conn.get(), nullptr, "x86_64", machine.c_str(),
	                                       virt_type.c_str(), cpu_xml.c_str(),
	                                       VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE);
	*compatible = r == VIR_CPU_COMPARE_IDENTICAL || r == VIR_CPU_COMPARE_SUPERSET;
	if (*compatible)
		return "libvirt's comparison: compatible";
	const char *m = virGetLastErrorMessage();
	std::string msg = m ? m : "incompatible";
	virResetLastError();
	return "libvirt's comparison: " + msg;
}

} // namespace

VirtTypeCaps parse_domain_caps(const std::string &text, const std::string &virt_type,
                               const std::string &cpu_model) {
	VirtTypeCaps caps;
	caps.virt_type = virt_type;
	caps.offered = CLOUDLET_YES;
	auto doc = xml::parse(text, "domain capabilities (" + virt_type + ")");
	caps.emulator = xml::value(doc.get(), "/domainCapabilities/path").value_or("");
	caps.machine = xml::value(doc.get(), "/domainCapabilities/machine").value_or("");

	auto models = xml::select(doc.get(), "/domainCapabilities/cpu/mode[@name='custom']/model");
	caps.cpu_model_usable = CLOUDLET_NO;
	caps.cpu_model_detail = "QEMU does not know model '" + cpu_model + "'";
	for (xmlNode *m : models) {
		if (xml::text(m) != cpu_model)
			continue;
		std::string usable = xml::attr(m, "usable").value_or("unknown");
		if (usable == "yes") {
			caps.cpu_model_usable = CLOUDLET_YES;
			caps.cpu_model_detail = "QEMU provides " + cpu_model + " under " + virt_type;
		} else if (usable == "no") {
			caps.cpu_model_usable = CLOUDLET_NO;
			caps.cpu_model_detail = "QEMU cannot provide " + cpu_model + " under " + virt_type;
		} else {
			caps.cpu_model_usable = CLOUDLET_UNKNOWN;
			caps.cpu_model_detail = "QEMU does not say whether " + cpu_model + " is usable";
		}
	}
	return caps;
}

VirtTypeCaps query_virt_type(const Connection &conn, const std::string &virt_type,
                             const std::string &cpu_model) {
	std::string text;
	try {
		text = conn.domain_capabilities(virt_type, "pc");
	} catch (const Error &e) {
		VirtTypeCaps caps;
		caps.virt_type = virt_type;
		caps.offered = CLOUDLET_NO;
		caps.offered_detail = e.what();
		caps.cpu_model_usable = CLOUDLET_NO;
		caps.cpu_model_detail = "virt type not offered";
		return caps;
	}
	VirtTypeCaps caps = parse_domain_caps(text, virt_type, cpu_model);
	bool compatible = false;
	caps.cpu_model_detail += "; " + compare_cpu(conn, virt_type, caps.machine, cpu_model, &compatible);
	return caps;
}

AcpiCaps query_acpi_hotplug(const Connection &conn, const std::string &machine) {
	AcpiCaps out;
	auto doc = xml::parse(conn.capabilities(), "host capabilities");
	auto acpi = xml::select(doc.get(),
	                        "/capabilities/guest[arch/@name='x86_64']/features/acpi");
	if (acpi.empty()) {
		out.hotplug = CLOUDLET_NO;
		out.detail = "libvirt offers no ACPI for x86_64 guests";
		return out;
	}
	bool toggle = xml::attr(acpi.front(), "toggle").value_or("no") == "yes";
	bool on = xml::attr(acpi.front(), "default").value_or("off") == "on";
	if (!toggle && !on) {
		out.hotplug = CLOUDLET_NO;
		out.detail = "ACPI cannot be enabled for x86_64 guests";
		return out;
	}
	if (machine.rfind("pc-i440fx", 0) != 0) {
		out.hotplug = CLOUDLET_UNKNOWN;
		out.detail = "machine '" + machine + "' is not i440fx; ACPI PCI hot-plug not verified";
		return out;
	}
	out.hotplug = CLOUDLET_YES;
	out.detail = "ACPI available for x86_64 guests; " + machine +
	             " hot-plugs PCI devices through ACPI (PIIX4) when <acpi/> is on";
	return out;
}

} // namespace cloudlet::virt
