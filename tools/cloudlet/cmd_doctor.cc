// cloudlet doctor: prints what cloudlet_doctor() found about this host.
#include "cli.h"

#include <cstdio>

namespace cli {

const char *doctor_help =
    "usage: cloudlet doctor [--probe-kernel FILE] [--probe-timeout SECONDS] | [--no-boot-probe]\n"
    "\n"
    "Reports libvirt and QEMU versions, whether KVM really runs guests here (a\n"
    "Linux kernel is booted under each virt type to prove it) or only TCG does,\n"
    "whether the enforced CPU model is usable per virt type, NIC hot-plug (ACPI)\n"
    "support, and the store's location and free space.\n"
    "\n"
    "  --probe-kernel FILE   kernel for the boot probe (default: $CLOUDLET_PROBE_KERNEL,\n"
    "                        /boot/vmlinuz-$(uname -r), /boot/vmlinuz)\n"
    "  --no-boot-probe       capabilities only; usability is then 'unknown'\n"
    "  --probe-timeout SEC   how long a probe kernel may print nothing (default 20;\n"
    "                        a boot that keeps printing may take 4x); 0.001 to 3600\n"
    "\n"
    "Exit status 0 when the report was made (whatever it says).\n";

namespace {

json_object *str(const char *s) {
	return json_object_new_string(s ? s : "");
}

json_object *report_json(const cloudlet_host_report *r) {
	json_object *o = json_object_new_object();
	json_object_object_add(o, "libcloudlet_version", json_object_new_string(cloudlet_version_string()));
	json_object_object_add(o, "libvirt_uri", str(r->libvirt_uri));
	json_object_object_add(o, "libvirt_version", str(r->libvirt_version));
	json_object_object_add(o, "qemu_version", str(r->qemu_version));
	json_object_object_add(o, "hostname", str(r->hostname));
	json_object_object_add(o, "cpu_model", str(r->cpu_model));
	json_object *kd = json_object_new_object();
	json_object_object_add(kd, "works", tristate_json(r->kvm_device));
	json_object_object_add(kd, "detail", str(r->kvm_device_detail));
	json_object_object_add(o, "kvm_device", kd);
	json_object *vts = json_object_new_object();
	for (size_t i = 0; i < r->virt_count; i++) {
		const cloudlet_virt_report *v = &r->virt[i];
		json_object *vo = json_object_new_object();
		json_object_object_add(vo, "offered", tristate_json(v->offered));
		json_object_object_add(vo, "usable", tristate_json(v->usable));
		json_object_object_add(vo, "reason", str(v->usable_detail));
		json_object_object_add(vo, "probe_seconds", json_object_new_double(v->probe_seconds));
		json_object_object_add(vo, "emulator", str(v->emulator));
		json_object_object_add(vo, "machine", str(v->machine));
		json_object *cpu = json_object_new_object();
		json_object_object_add(cpu, "model", str(r->cpu_model));
		json_object_object_add(cpu, "usable", tristate_json(v->cpu_model_usable));
		json_object_object_add(cpu, "detail", str(v->cpu_model_detail));
		json_object_object_add(vo, "cpu_model", cpu);
		json_object_object_add(vts, v->virt_type, vo);
	}
	json_object_object_add(o, "virt_types", vts);
	json_object_object_add(o, "preferred_virt_type",
	                       r->preferred_virt_type && *r->preferred_virt_type ? str(r->preferred_virt_type) : nullptr);
	json_object *acpi = json_object_new_object();
	json_object_object_add(acpi, "available", tristate_json(r->acpi_hotplug));
	json_object_object_add(acpi, "detail", str(r->acpi_hotplug_detail));
	json_object_object_add(o, "acpi_hotplug", acpi);
	json_object *early = json_object_new_object();
	json_object_object_add(early, "available", tristate_json(r->early_start));
	json_object_object_add(early, "detail", str(r->early_start_detail));
	json_object_object_add(o, "early_start", early);
	json_object *store = json_object_new_object();
	json_object_object_add(store, "path", str(r->store_dir));
	json_object_object_add(store, "writable", tristate_json(r->store_writable));
	json_object_object_add(store, "free_bytes", json_object_new_uint64(r->store_free_bytes));
	json_object_object_add(store, "total_bytes", json_object_new_uint64(r->store_total_bytes));
	json_object_object_add(o, "store", store);
	json_object_object_add(o, "probe_kernel", str(r->probe_kernel));
	return o;
}

void print_human(const cloudlet_host_report *r) {
	printf("libcloudlet %s on %s\n", cloudlet_version_string(), r->hostname);
	printf("  libvirt        %s (%s)\n", r->libvirt_version, r->libvirt_uri);
	printf("  QEMU           %s\n", *r->qemu_version ? r->qemu_version : "unknown");
	printf("  /dev/kvm       %s: %s\n", tristate_word(r->kvm_device), r->kvm_device_detail);
	for (size_t i = 0; i < r->virt_count; i++) {
		const cloudlet_virt_report *v = &r->virt[i];
		printf("  virt type %-4s usable: %s - %s\n", v->virt_type, tristate_word(v->usable), v->usable_detail);
		printf("                 CPU model %s usable: %s - %s\n", r->cpu_model,
		       tristate_word(v->cpu_model_usable), v->cpu_model_detail);
	}
	printf("  preferred      %s\n", *r->preferred_virt_type ? r->preferred_virt_type : "none proven");
	printf("  NIC hot-plug   %s - %s\n", tristate_word(r->acpi_hotplug), r->acpi_hotplug_detail);
	printf("  early start    %s - %s\n", tristate_word(r->early_start), r->early_start_detail);
	printf("  store          %s (writable: %s, %s free of %s)\n", r->store_dir, tristate_word(r->store_writable),
	       human_bytes(r->store_free_bytes).c_str(), human_bytes(r->store_total_bytes).c_str());
	if (*r->probe_kernel)
		printf("  probe kernel   %s\n", r->probe_kernel);
}

} // namespace

int cmd_doctor(const Global &g, Args args) {
	cloudlet_doctor_options o = CLOUDLET_DOCTOR_OPTIONS_INIT;
	std::string kernel, timeout;
	bool has_kernel = args.value("--probe-kernel", &kernel);
	bool no_probe = args.flag("--no-boot-probe");
	bool has_timeout = args.value("--probe-timeout", &timeout);
	// Probe settings without a probe would be ignored without a word.
	exclusive("--no-boot-probe", no_probe, "--probe-kernel", has_kernel);
	exclusive("--no-boot-probe", no_probe, "--probe-timeout", has_timeout);
	if (has_kernel)
		o.probe_kernel = kernel.c_str();
	if (no_probe)
		o.boot_probe = 0;
	if (has_timeout) // in ms: "2.5" is 2500
		o.probe_timeout_ms = static_cast<unsigned>(parse_number("--probe-timeout", timeout, 1, 3600 * 1000, 3));
	if (!args.positional("doctor").empty())
		throw Failure{"doctor takes no arguments (see cloudlet doctor --help)", 2};

	cloudlet_ctx *ctx = open_context(g);
	ProgressSink progress = make_progress(g);
	o.progress = ProgressSink::callback;
	o.progress_userdata = &progress;
	o.cancel = interrupt_cancel();
	cloudlet_host_report *r = nullptr;
	cloudlet_status st = cloudlet_doctor(&r, ctx, &o);
	progress.finish();
	if (st != CLOUDLET_OK) {
		cloudlet_ctx_free(ctx);
		check(st, "doctor failed");
	}
	if (g.json)
		print_json(report_json(r));
	else
		print_human(r);
	cloudlet_host_report_free(r);
	cloudlet_ctx_free(ctx);
	return 0;
}

} // namespace cli
