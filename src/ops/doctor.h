// The doctor operation: what this host can do for cloudlets.
#pragma once

#include "ops/context.h"
#include "util/progress.h"

#include <cloudlet.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet::ops {

struct DoctorOptions {
	bool boot_probe = true;
	std::string probe_kernel;                       // empty: search
	std::chrono::milliseconds probe_timeout{20000};
};

struct VirtReport {
	std::string virt_type;
	cloudlet_tristate offered = CLOUDLET_UNKNOWN;
	cloudlet_tristate usable = CLOUDLET_UNKNOWN;
	std::string usable_detail;
	double probe_seconds = 0;
	std::string emulator, machine;
	cloudlet_tristate cpu_model_usable = CLOUDLET_UNKNOWN;
	std::string cpu_model_detail;
};

struct HostReport {
	std::string libvirt_uri, libvirt_version, qemu_version, hostname, cpu_model;
	cloudlet_tristate kvm_device = CLOUDLET_UNKNOWN;
	std::string kvm_device_detail;
	std::vector<VirtReport> virt;                   // "kvm", then "qemu"
	std::string preferred_virt_type;
	cloudlet_tristate acpi_hotplug = CLOUDLET_UNKNOWN;
	std::string acpi_hotplug_detail;
	std::string store_dir;
	cloudlet_tristate store_writable = CLOUDLET_UNKNOWN;
	uint64_t store_free_bytes = 0, store_total_bytes = 0;
	std::string probe_kernel;
	cloudlet_tristate early_start = CLOUDLET_UNKNOWN; // postcopy: QEMU may use userfaultfd
	std::string early_start_detail;
};

// Where the boot probe finds a kernel when none is given: $CLOUDLET_PROBE_KERNEL,
// /boot/vmlinuz-$(uname -r), /boot/vmlinuz. Empty when none is readable.
std::string find_probe_kernel();

HostReport doctor(Context &ctx, const DoctorOptions &opts, Progress &progress);

} // namespace cloudlet::ops
