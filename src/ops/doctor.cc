#include "ops/doctor.h"

#include "host/kvm_device.h"
#include "host/store_space.h"
#include "util/error.h"
#include "virt/boot_probe.h"
#include "virt/host_caps.h"
#include "virt/postcopy_incoming.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <thread>

namespace cloudlet::ops {

std::string find_probe_kernel() {
	std::vector<std::string> candidates;
	if (const char *e = getenv("CLOUDLET_PROBE_KERNEL"); e && *e)
		candidates.push_back(e);
	struct utsname u {};
	if (uname(&u) == 0)
		candidates.push_back(std::string("/boot/vmlinuz-") + u.release);
	candidates.push_back("/boot/vmlinuz");
	for (const auto &c : candidates)
		if (access(c.c_str(), R_OK) == 0)
			return c;
	return "";
}

namespace {

VirtReport from_caps(const virt::VirtTypeCaps &c) {
	VirtReport v;
	v.virt_type = c.virt_type;
	v.offered = c.offered;
	v.emulator = c.emulator;
	v.machine = c.machine;
	v.cpu_model_usable = c.cpu_model_usable;
	v.cpu_model_detail = c.cpu_model_detail;
	if (c.offered == CLOUDLET_NO) {
		v.usable = CLOUDLET_NO;
		v.usable_detail = "libvirt does not offer it: " + c.offered_detail;
	}
	return v;
}

} // namespace

HostReport doctor(Context &ctx, const DoctorOptions &opts, Progress &progress) {
	HostReport r;
	const Settings &s = ctx.settings();
	r.cpu_model = s.cpu_model;
	r.store_dir = s.store_dir;
	progress.report("capabilities", 0, 3);

	auto conn = ctx.connection();
	r.libvirt_uri = conn->uri();
	r.libvirt_version = conn->libvirt_version();
	r.qemu_version = conn->hypervisor_version();
	r.hostname = conn->hostname();

	host::KvmDevice kvm = host::probe_kvm_device();
	r.kvm_device = kvm.works;
	r.kvm_device_detail = kvm.detail;

	for (const char *vt : {"kvm", "qemu"})
		r.virt.push_back(from_caps(virt::query_virt_type(*conn, vt, s.cpu_model)));
	progress.report("capabilities", 1, 3);

	std::string machine;
	for (const auto &v : r.virt)
		if (!v.machine.empty())
			machine = v.machine;
	virt::AcpiCaps acpi = virt::query_acpi_hotplug(*conn, machine);
	r.acpi_hotplug = acpi.hotplug;
	r.acpi_hotplug_detail = acpi.detail;

	std::string why;
	r.early_start = virt::postcopy_possible(why) ? CLOUDLET_YES : CLOUDLET_NO;
	r.early_start_detail = why;

	host::DirSpace space = host::dir_space(s.store_dir);
	r.store_writable = space.writable;
	r.store_free_bytes = space.free_bytes;
	r.store_total_bytes = space.total_bytes;
	progress.report("capabilities", 3, 3);

	r.probe_kernel = opts.probe_kernel.empty() ? find_probe_kernel() : opts.probe_kernel;
	std::string no_probe;
	if (!opts.boot_probe)
		no_probe = "not proven: boot probe disabled";
	else if (r.probe_kernel.empty())
		no_probe = "not proven: no kernel for the boot probe (give one with --probe-kernel or "
		           "CLOUDLET_PROBE_KERNEL)";
	else if (!conn->is_local())
		no_probe = "not proven: the boot probe needs a local libvirt connection";
	else if (access(r.probe_kernel.c_str(), R_OK) != 0)
		fail(CLOUDLET_E_NOT_FOUND, "probe kernel '" + r.probe_kernel + "' is not readable");

	// The kernel cannot have booted if the device does not even work.
	VirtReport &kvm_report = r.virt[0];
	if (kvm_report.usable == CLOUDLET_UNKNOWN && kvm.works == CLOUDLET_NO) {
		kvm_report.usable = CLOUDLET_NO;
		kvm_report.usable_detail = kvm.detail;
	}

	// Boot probes of both virt types run in parallel: the KVM one may have
	// to wait for its whole timeout on a host where KVM guests hang.
	std::vector<std::thread> threads;
	std::vector<std::exception_ptr> errors(r.virt.size());
	for (size_t i = 0; i < r.virt.size(); i++) {
		VirtReport &v = r.virt[i];
		if (v.usable != CLOUDLET_UNKNOWN)
			continue;
		if (!no_probe.empty()) {
			v.usable_detail = no_probe;
			continue;
		}
		threads.emplace_back([&, i] {
			try {
				progress.report("probe-" + r.virt[i].virt_type, 0, 1);
				virt::BootProbeResult b = virt::boot_probe(*conn, r.virt[i].virt_type,
				                                           r.probe_kernel, opts.probe_timeout, progress);
				r.virt[i].usable = b.usable;
				r.virt[i].usable_detail = b.detail;
				r.virt[i].probe_seconds = b.seconds;
				if (b.hung && r.virt[i].virt_type == "kvm" && kvm.works == CLOUDLET_YES)
					r.virt[i].usable_detail += "; /dev/kvm itself works (" + kvm.detail +
					                           "), so nested virtualisation is likely broken";
				progress.report("probe-" + r.virt[i].virt_type, 1, 1);
			} catch (...) {
				errors[i] = std::current_exception();
			}
		});
	}
	for (auto &t : threads)
		t.join();
	for (auto &e : errors)
		if (e)
			std::rethrow_exception(e);

	for (const auto &v : r.virt)
		if (v.usable == CLOUDLET_YES) {
			r.preferred_virt_type = v.virt_type;
			break;
		}
	return r;
}

} // namespace cloudlet::ops
