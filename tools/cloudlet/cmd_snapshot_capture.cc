// cloudlet snapshot capture: a domain's memory into a libvirt save image
// (or our memory image) through libcloudlet's own pipeline.
#include "cli.h"

#include <cstdio>

namespace cli {

const char *snapshot_capture_help =
    "usage: cloudlet snapshot capture [--live] [--stop] [--format save|memory-image] DOMAIN FILE\n"
    "\n"
    "Migrates the domain's memory and device state into a socket libcloudlet owns,\n"
    "parses it as it arrives and writes FILE: a libvirt save image (default;\n"
    "`virsh restore FILE` resumes it) or libcloudlet's memory image. Disks are not\n"
    "copied. FILE appears only when complete.\n"
    "\n"
    "  --live      keep the VM running through QEMU's passes over its RAM; it is\n"
    "              paused only for the final pass. Without it the VM is paused for\n"
    "              the whole capture.\n"
    "  --stop      shut the domain off afterwards (like virsh save). Without it the\n"
    "              domain is left running or paused, as it was.\n"
    "  --format    save (default) or memory-image.\n"
    "\n"
    "On failure or Ctrl-C the domain is back in its prior state and FILE untouched.\n";

int cmd_snapshot_capture(const Global &g, Args args) {
	cloudlet_capture_options o = CLOUDLET_CAPTURE_OPTIONS_INIT;
	o.live = args.flag("--live") ? 1 : 0;
	o.stop = args.flag("--stop") ? 1 : 0;
	std::string format;
	if (args.value("--format", &format)) {
		if (format == "save")
			o.format = CLOUDLET_CAPTURE_SAVE_IMAGE;
		else if (format == "memory-image")
			o.format = CLOUDLET_CAPTURE_MEMORY_IMAGE;
		else
			throw Failure{"--format must be 'save' or 'memory-image', not '" + format + "'", 2};
	}
	std::vector<std::string> pos = args.positional("snapshot capture");
	if (pos.size() != 2)
		throw Failure{"snapshot capture takes DOMAIN and FILE (see cloudlet snapshot capture --help)", 2};
	cloudlet_ctx *ctx = open_context(g);
	ProgressSink progress = make_progress(g);
	o.progress = ProgressSink::callback;
	o.progress_userdata = &progress;
	o.cancel = interrupt_cancel();
	cloudlet_capture_result *r = nullptr;
	cloudlet_status st = cloudlet_snapshot_capture(&r, ctx, pos[0].c_str(), pos[1].c_str(), &o);
	progress.finish();
	cloudlet_ctx_free(ctx);
	check(st, "snapshot capture failed");
	if (g.json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "path", json_object_new_string(r->path));
		json_object_object_add(j, "format", json_object_new_string(o.format == CLOUDLET_CAPTURE_SAVE_IMAGE ? "libvirt-save" : "memory-image"));
		json_object *d = json_object_new_object();
		json_object_object_add(d, "name", json_object_new_string(r->domain_name));
		json_object_object_add(d, "uuid", json_object_new_string(r->domain_uuid));
		json_object_object_add(d, "was_running", json_object_new_boolean(r->was_running));
		json_object_object_add(d, "final_state", json_object_new_string(r->final_state));
		json_object_object_add(j, "domain", d);
		json_object_object_add(j, "live", json_object_new_boolean(o.live));
		json_object_object_add(j, "stream_bytes", json_object_new_uint64(r->stream_bytes));
		json_object_object_add(j, "page_records", json_object_new_uint64(r->page_records));
		json_object_object_add(j, "ram_sections", json_object_new_uint64(r->ram_sections));
		json_object_object_add(j, "passes", json_object_new_uint64(r->passes));
		json_object_object_add(j, "total_pages", json_object_new_uint64(r->total_pages));
		json_object_object_add(j, "data_pages", json_object_new_uint64(r->data_pages));
		json_object_object_add(j, "file_bytes", json_object_new_uint64(r->file_bytes));
		json_object_object_add(j, "seconds", json_object_new_double(r->seconds));
		json_object_object_add(j, "downtime_ms", json_object_new_double(r->downtime_ms));
		print_json(j);
	} else if (!g.quiet) {
		printf("captured %s%s into %s (%s) in %.1f s\n", r->domain_name, o.live ? " live" : "", r->path,
		       human_bytes(r->file_bytes).c_str(), r->seconds);
		printf("  stream       %s from QEMU, %llu page records in %llu passes\n",
		       human_bytes(r->stream_bytes).c_str(), static_cast<unsigned long long>(r->page_records),
		       static_cast<unsigned long long>(r->passes));
		if (o.live)
			printf("  downtime     %.0f ms (VM paused for QEMU's final pass)\n", r->downtime_ms);
		printf("  pages        %llu total, %llu with data\n", static_cast<unsigned long long>(r->total_pages),
		       static_cast<unsigned long long>(r->data_pages));
		printf("  domain       %s now\n", r->final_state);
	}
	cloudlet_capture_result_free(r);
	return 0;
}

} // namespace cli
