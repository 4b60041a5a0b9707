// cloudlet_doctor(): runs ops::doctor and hands the caller a report whose
// strings and arrays live in one allocation, freed by
// cloudlet_host_report_free().
#include "abi/guard.h"
#include "abi/handles.h"
#include "abi/options.h"
#include "abi/reports.h"
#include "ops/doctor.h"

#include <cloudlet.h>

#include <string>
#include <vector>

namespace {

// The public struct is the base; the storage it points into follows it.
struct HostReportHolder : cloudlet_host_report, cloudlet::abi::StringKeeper {
	std::vector<cloudlet_virt_report> virt_items;
};

HostReportHolder *to_c(const cloudlet::ops::HostReport &r) {
	auto *h = new HostReportHolder();
	cloudlet_host_report &p = *h;
	p = cloudlet_host_report{};
	p.version = CLOUDLET_HOST_REPORT_VERSION;
	p.libvirt_uri = h->keep(r.libvirt_uri);
	p.libvirt_version = h->keep(r.libvirt_version);
	p.qemu_version = h->keep(r.qemu_version);
	p.hostname = h->keep(r.hostname);
	p.cpu_model = h->keep(r.cpu_model);
	p.kvm_device = r.kvm_device;
	p.kvm_device_detail = h->keep(r.kvm_device_detail);
	for (const auto &v : r.virt) {
		cloudlet_virt_report c{};
		c.version = 1;
		c.virt_type = h->keep(v.virt_type);
		c.offered = v.offered;
		c.usable = v.usable;
		c.usable_detail = h->keep(v.usable_detail);
		c.probe_seconds = v.probe_seconds;
		c.emulator = h->keep(v.emulator);
		c.machine = h->keep(v.machine);
		c.cpu_model_usable = v.cpu_model_usable;
		c.cpu_model_detail = h->keep(v.cpu_model_detail);
		h->virt_items.push_back(c);
	}
	p.virt_count = h->virt_items.size();
	p.virt = h->virt_items.data();
	p.preferred_virt_type = h->keep(r.preferred_virt_type);
	p.acpi_hotplug = r.acpi_hotplug;
	p.acpi_hotplug_detail = h->keep(r.acpi_hotplug_detail);
	p.store_dir = h->keep(r.store_dir);
	p.store_writable = r.store_writable;
	p.store_free_bytes = r.store_free_bytes;
	p.store_total_bytes = r.store_total_bytes;
	p.probe_kernel = h->keep(r.probe_kernel);
	p.early_start = r.early_start;
	p.early_start_detail = h->keep(r.early_start_detail);
	return h;
}

} // namespace

using cloudlet::abi::guard;
using cloudlet::abi::init_options;
using cloudlet::abi::read_options;
using cloudlet::abi::require;

extern "C" {

CLOUDLET_API cloudlet_status cloudlet_doctor_options_init(cloudlet_doctor_options *opts, unsigned int version) {
	return guard(__func__, [&] {
		init_options(opts, version);
	});
}

CLOUDLET_API cloudlet_status cloudlet_doctor(cloudlet_host_report **out, cloudlet_ctx *ctx,
                                             const cloudlet_doctor_options *opts) {
	return guard(__func__, [&] {
		require(out != nullptr, "out is NULL");
		*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		cloudlet_doctor_options o = read_options(opts);
		require(o.boot_probe == 0 || o.boot_probe == 1, "boot_probe must be 0 or 1");
		cloudlet::ops::DoctorOptions d;
		d.boot_probe = o.boot_probe == 1;
		d.probe_kernel = o.probe_kernel ? o.probe_kernel : "";
		if (o.probe_timeout_ms)
			d.probe_timeout = std::chrono::milliseconds(o.probe_timeout_ms);
		cloudlet::Progress progress(o.progress, o.progress_userdata, o.cancel);
		cloudlet::ops::HostReport r = cloudlet::ops::doctor(ctx->ctx, d, progress);
		*out = to_c(r);
	});
}

CLOUDLET_API void cloudlet_host_report_free(cloudlet_host_report *report) {
	delete static_cast<HostReportHolder *>(report);
}

} // extern "C"
