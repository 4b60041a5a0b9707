// Portability after any resume: the restored NICs still carry the MAC (and
// the network) of the VM that was saved. Each is hot-unplugged — the guest
// sees an ACPI eject and lets go of it — and a fresh one is plugged in for
// this host's network (docs/synthesis.md "NIC swap").
#pragma once

#include "util/progress.h"

#include <libvirt/libvirt.h>

#include <string>
#include <vector>

namespace cloudlet::virt {

// What the fresh NICs look like. The first NIC takes `mac` and `nic_xml`;
// `network` applies to all. Empty fields: the old NIC's settings with a new
// MAC chosen by libvirt.
struct NicRequest {
	std::string mac;      // "52:54:00:12:34:56"
	std::string network;  // a libvirt network name: <interface type='network'>
	std::string nic_xml;  // a whole <interface> element, used as given (its MAC if it has one)
};

// The <interface> whose backend a launch VM's NICs are restored on
// (InstancePlan::nic_backend): the request's NIC XML, else an interface on
// its libvirt network, else "" (the base's NIC).
std::string nic_backend(const NicRequest &req);

struct NicSwap {
	std::vector<std::string> old_macs, macs;
};

// Checks a request before anything is created: MAC syntax (unicast), the
// network exists and is active, the XML is one <interface>. Throws
// CLOUDLET_E_INVALID_ARG / CLOUDLET_E_NOT_FOUND.
void check_nic_request(virConnectPtr conn, const NicRequest &req);

// Replaces every NIC of a running domain. `release_timeout_s`: how long the
// guest may take to release an unplugged NIC (CLOUDLET_E_TIMEOUT after).
NicSwap swap_nics(virDomainPtr dom, const NicRequest &req, Progress &progress, int release_timeout_s = 20);

// The MACs of a running domain's NICs, in the order of its XML.
std::vector<std::string> domain_macs(virDomainPtr dom);

} // namespace cloudlet::virt
