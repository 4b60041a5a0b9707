#include "virt/nic_swap.h"

#include "util/clock.h"
#include "util/error.h"
#include "util/xml.h"
#include "virt/base_xml.h"
#include "virt/connection.h"

#include <libvirt/virterror.h>

#include <chrono>
#include <set>
#include <thread>

namespace cloudlet::virt {

namespace {

std::string live_xml(virDomainPtr d) {
	char *x = virDomainGetXMLDesc(d, 0);
	if (!x)
		fail_libvirt("cannot read the XML of domain " + std::string(virDomainGetName(d)));
	std::string s = x;
	free(x);
	return s;
}

bool valid_mac(const std::string &m) {
	if (m.size() != 17)
		return false;
	for (size_t i = 0; i < m.size(); i++) {
		char c = m[i];
		if (i % 3 == 2 ? c != ':' : !isxdigit(static_cast<unsigned char>(c)))
			return false;
	}
	// The low bit of the first octet marks multicast: not a NIC's address.
	return (std::stoi(m.substr(0, 2), nullptr, 16) & 1) == 0;
}

xmlNode *child(xmlNode *parent, const char *name) {
	for (xmlNode *c = parent->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, reinterpret_cast<const xmlChar *>(name)))
			return c;
	return nullptr;
}

void remove_children(xmlNode *parent, const char *name) {
	while (xmlNode *c = child(parent, name)) {
		xmlUnlinkNode(c);
		xmlFreeNode(c);
	}
}

// The fresh NIC for position `i` from the old one's fresh copy.
std::string fresh_nic(const NicXml &old, const NicRequest &req, size_t i) {
	std::string base = i == 0 && !req.nic_xml.empty() ? req.nic_xml : old.fresh;
	auto doc = xml::parse(base, "interface XML");
	xmlNode *root = xmlDocGetRootElement(doc.get());
	if (!req.network.empty() && (i > 0 || req.nic_xml.empty())) {
		xml::set_attr(root, "type", "network");
		remove_children(root, "source");
		xml::add(root, "source", {}, {{"network", req.network}});
	}
	if (i == 0 && !req.mac.empty()) {
		remove_children(root, "mac");
		xml::add(root, "mac", {}, {{"address", req.mac}});
	}
	return xml::to_string(doc.get());
}

} // namespace

void check_nic_request(virConnectPtr conn, const NicRequest &req) {
	if (!req.mac.empty() && !valid_mac(req.mac))
		fail(CLOUDLET_E_INVALID_ARG, "'" + req.mac + "' is not a unicast MAC address (like 52:54:00:12:34:56)");
	if (!req.network.empty()) {
		virNetworkPtr n = virNetworkLookupByName(conn, req.network.c_str());
		if (!n)
			fail(CLOUDLET_E_NOT_FOUND, "libvirt has no network named '" + req.network + "'");
		int active = virNetworkIsActive(n);
		virNetworkFree(n);
		if (active != 1)
			fail(CLOUDLET_E_INVALID_ARG, "libvirt network '" + req.network + "' is not active");
	}
	if (!req.nic_xml.empty()) {
		auto doc = xml::parse(req.nic_xml, "the NIC XML");
		xmlNode *root = xmlDocGetRootElement(doc.get());
		if (!root || !xmlStrEqual(root->name, reinterpret_cast<const xmlChar *>("interface")))
			fail(CLOUDLET_E_INVALID_ARG, "the NIC XML must be one <interface> element");
		if (xmlNode *m = child(root, "mac")) {
			auto a = xml::attr(m, "address");
			if (!a || !valid_mac(*a))
				fail(CLOUDLET_E_INVALID_ARG, "the NIC XML has an invalid MAC address");
			if (!req.mac.empty() && *a != req.mac)
				fail(CLOUDLET_E_INVALID_ARG, "the NIC XML's MAC " + *a + " contradicts the MAC asked for, " + req.mac);
		}
	}
}

std::string nic_backend(const NicRequest &req) {
	if (!req.nic_xml.empty())
		return req.nic_xml;
	if (req.network.empty())
		return "";
	auto doc = xml::new_doc("interface");
	xmlNode *root = xmlDocGetRootElement(doc.get());
	xml::set_attr(root, "type", "network");
	xml::add(root, "source", {}, {{"network", req.network}});
	return xml::to_string(doc.get());
}

std::vector<std::string> domain_macs(virDomainPtr dom) {
	std::vector<std::string> v;
	for (const auto &n : domain_nics(live_xml(dom)))
		v.push_back(n.mac);
	return v;
}

namespace {
std::set<std::string> macs_of(virDomainPtr d) {
	std::vector<std::string> v = domain_macs(d);
	return {v.begin(), v.end()};
}
} // namespace

NicSwap swap_nics(virDomainPtr dom, const NicRequest &req, Progress &progress, int release_timeout_s) {
	NicSwap out;
	std::string name = virDomainGetName(dom);
	auto nics = domain_nics(live_xml(dom));
	for (size_t i = 0; i < nics.size(); i++) {
		const NicXml &nic = nics[i];
		progress.report("nic", i, nics.size());
		if (virDomainDetachDeviceFlags(dom, nic.current.c_str(), VIR_DOMAIN_AFFECT_LIVE) < 0)
			fail_libvirt("cannot unplug NIC " + nic.mac + " of " + name);
		// libvirt returns once QEMU asked the guest (or after waiting 5 s
		// for it); the device is gone only when the guest has released it.
		// The request is an ACPI event the guest can miss: a kernel busy
		// right after resume clears the GPE status bit before handling it
		// (QEMU's hw/acpi/pcihp.c says so and lets device_del be repeated
		// at once for that reason). So the request is repeated every 3 s
		// until the guest acts on one or the time is up.
		auto deadline = Clock::now() + std::chrono::seconds(release_timeout_s);
		auto again = Clock::now() + std::chrono::seconds(3);
		unsigned requests = 1;
		while (macs_of(dom).count(nic.mac)) {
			if (Clock::now() > deadline)
				fail(CLOUDLET_E_TIMEOUT, "the guest of " + name + " did not release NIC " + nic.mac + " within " +
				                             std::to_string(release_timeout_s) + " s (asked " + std::to_string(requests) +
				                             " times; does its kernel handle ACPI hot-plug?)");
			if (Clock::now() > again) {
				// A repeat may be refused while QEMU still counts the last
				// one as pending; the wait goes on either way.
				if (virDomainDetachDeviceFlags(dom, nic.current.c_str(), VIR_DOMAIN_AFFECT_LIVE) == 0)
					requests++;
				else
					virResetLastError();
				again = Clock::now() + std::chrono::seconds(3);
			}
			std::this_thread::sleep_for(std::chrono::milliseconds(10));
		}
		std::set<std::string> before = macs_of(dom);
		std::string fresh = fresh_nic(nic, req, i);
		if (virDomainAttachDeviceFlags(dom, fresh.c_str(), VIR_DOMAIN_AFFECT_LIVE) < 0)
			fail_libvirt("cannot plug a new NIC into " + name);
		for (const auto &m : macs_of(dom))
			if (!before.count(m))
				out.macs.push_back(m);
		out.old_macs.push_back(nic.mac);
	}
	return out;
}

} // namespace cloudlet::virt
