// cloudlet snapshot info: what a libvirt save image or QEMU stream holds.
#include "cli.h"

#include <cstdio>

namespace cli {

const char *snapshot_info_help =
    "usage: cloudlet snapshot info FILE [--json]\n"
    "\n"
    "Reads a libvirt save image (virsh save) or a bare QEMU migration stream in\n"
    "one streaming pass and prints: image and stream versions, machine type, RAM\n"
    "blocks with sizes, page counts (total/zero/data), device sections, and the\n"
    "domain's name and UUID. Corrupt input is reported with the offset of the\n"
    "problem.\n";

const char *snapshot_help =
    "usage: cloudlet snapshot info FILE\n"
    "       cloudlet snapshot capture [--live] [--stop] [--format save|memory-image] DOMAIN FILE\n"
    "\n"
    "info: what a libvirt save image or a QEMU migration stream holds.\n"
    "capture: a running domain's memory and device state into FILE.\n"
    "The verb follows 'snapshot' directly. Both take --json; more with\n"
    "cloudlet snapshot info --help, cloudlet snapshot capture --help.\n";

// "snapshot" without one of its verbs.
int cmd_snapshot(const Global &, Args args) {
	std::vector<std::string> pos = args.positional("snapshot");
	if (pos.empty())
		throw Failure{"snapshot needs 'info' or 'capture' (see cloudlet snapshot --help)", 2};
	throw Failure{"unknown subcommand 'snapshot " + pos[0] + "' (see cloudlet snapshot --help)", 2};
}

namespace {

json_object *info_json(const cloudlet_snapshot_info *i) {
	json_object *o = json_object_new_object();
	json_object_object_add(o, "path", json_object_new_string(i->path));
	json_object_object_add(o, "format", json_object_new_string(i->format));
	json_object_object_add(o, "image_version", json_object_new_int(static_cast<int>(i->image_version)));
	json_object_object_add(o, "complete", json_object_new_boolean(i->complete));
	json_object_object_add(o, "was_running", json_object_new_boolean(i->was_running));
	json_object_object_add(o, "stream_version", json_object_new_int(static_cast<int>(i->stream_version)));
	json_object_object_add(o, "machine_type", json_object_new_string(i->machine_type));
	json_object *dom = json_object_new_object();
	json_object_object_add(dom, "name", json_object_new_string(i->domain_name));
	json_object_object_add(dom, "uuid", json_object_new_string(i->domain_uuid));
	json_object_object_add(o, "domain", dom);
	json_object *blocks = json_object_new_array();
	for (size_t b = 0; b < i->block_count; b++) {
		const cloudlet_ram_block_info *bl = &i->blocks[b];
		json_object *bo = json_object_new_object();
		json_object_object_add(bo, "name", json_object_new_string(bl->name));
		json_object_object_add(bo, "bytes", json_object_new_uint64(bl->length));
		json_object_object_add(bo, "pages", json_object_new_uint64(bl->pages));
		json_object_object_add(bo, "zero_pages", json_object_new_uint64(bl->zero_pages));
		json_object_object_add(bo, "data_pages", json_object_new_uint64(bl->data_pages));
		json_object_array_add(blocks, bo);
	}
	json_object_object_add(o, "ram_blocks", blocks);
	json_object *pages = json_object_new_object();
	json_object_object_add(pages, "total", json_object_new_uint64(i->total_pages));
	json_object_object_add(pages, "zero", json_object_new_uint64(i->zero_pages));
	json_object_object_add(pages, "data", json_object_new_uint64(i->data_pages));
	json_object_object_add(pages, "records", json_object_new_uint64(i->page_records));
	json_object_object_add(o, "pages", pages);
	json_object_object_add(o, "ram_sections", json_object_new_uint64(i->ram_sections));
	json_object_object_add(o, "file_bytes", json_object_new_uint64(i->file_bytes));
	json_object_object_add(o, "device_state_bytes", json_object_new_uint64(i->device_state_bytes));
	json_object *devs = json_object_new_array();
	for (size_t d = 0; d < i->device_count; d++)
		json_object_array_add(devs, json_object_new_string(i->devices[d]));
	json_object_object_add(o, "device_sections", devs);
	json_object_object_add(o, "device_sections_located", json_object_new_boolean(i->devices_split));
	return o;
}

void print_human(const cloudlet_snapshot_info *i) {
	printf("%s: %s", i->path, i->format);
	if (i->image_version)
		printf(" version %u%s", i->image_version, i->complete ? "" : " (incomplete)");
	printf(", QEMU stream version %u, machine %s\n", i->stream_version, i->machine_type);
	if (*i->domain_name)
		printf("  domain       %s (%s)%s\n", i->domain_name, i->domain_uuid, i->was_running ? ", was running" : "");
	printf("  size         %s (%s device state)\n", human_bytes(i->file_bytes).c_str(),
	       human_bytes(i->device_state_bytes).c_str());
	printf("  pages        %llu total, %llu zero, %llu data (%llu records in %llu RAM sections)\n",
	       static_cast<unsigned long long>(i->total_pages), static_cast<unsigned long long>(i->zero_pages),
	       static_cast<unsigned long long>(i->data_pages), static_cast<unsigned long long>(i->page_records),
	       static_cast<unsigned long long>(i->ram_sections));
	printf("  RAM blocks\n");
	for (size_t b = 0; b < i->block_count; b++)
		printf("    %-24s %10s  %8llu zero %8llu data\n", i->blocks[b].name, human_bytes(i->blocks[b].length).c_str(),
		       static_cast<unsigned long long>(i->blocks[b].zero_pages),
		       static_cast<unsigned long long>(i->blocks[b].data_pages));
	printf("  devices      %zu sections%s\n   ", i->device_count, i->devices_split ? "" : " (not all located)");
	for (size_t d = 0; d < i->device_count; d++)
		printf(" %s", i->devices[d]);
	printf("\n");
}

} // namespace

int cmd_snapshot_info(const Global &g, Args args) {
	std::vector<std::string> pos = args.positional("snapshot info");
	if (pos.size() != 1)
		throw Failure{"snapshot info takes one FILE (see cloudlet snapshot info --help)", 2};
	cloudlet_ctx *ctx = open_context(g);
	ProgressSink progress = make_progress(g);
	cloudlet_snapshot_options o = CLOUDLET_SNAPSHOT_OPTIONS_INIT;
	o.progress = ProgressSink::callback;
	o.progress_userdata = &progress;
	o.cancel = interrupt_cancel();
	cloudlet_snapshot_info *info = nullptr;
	cloudlet_status st = cloudlet_snapshot_inspect(&info, ctx, pos[0].c_str(), &o);
	progress.finish();
	cloudlet_ctx_free(ctx);
	check(st, "snapshot info failed");
	if (g.json)
		print_json(info_json(info));
	else
		print_human(info);
	cloudlet_snapshot_info_free(info);
	return 0;
}

} // namespace cli
