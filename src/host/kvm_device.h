// Probes the KVM device directly: present, openable, right API version, and
// able to create a VM. Necessary but not sufficient for KVM to run guests
// (nested virtualisation can pass all of this and still hang a guest), so
// the doctor follows it with a boot probe.
#pragma once

#include <cloudlet.h>

#include <string>

namespace cloudlet::host {

struct KvmDevice {
	cloudlet_tristate works = CLOUDLET_UNKNOWN;
	std::string detail;
};

KvmDevice probe_kvm_device(const std::string &path = "/dev/kvm");

} // namespace cloudlet::host
