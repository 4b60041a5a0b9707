// cloudlet overlay create|info
#include "cli.h"

#include <cstdio>

namespace cli {

const char *overlay_help =
    "usage: cloudlet overlay create DOMAIN FILE [--codec zstd|lzma|none|auto] [--level N] [--threads N] [--stop]\n"
    "       cloudlet overlay info FILE\n"
    "\n"
    "create: DOMAIN must have been resumed from a base of the store (cloudlet base\n"
    "resume) and customised. Its memory and the changed clusters of its disks are\n"
    "deduplicated against the base and itself and compressed into FILE, while the\n"
    "VM is paused; afterwards it runs again (or is shut off with --stop).\n"
    "info: verifies FILE and prints what it holds, per dedup category.\n"
    "Both take --json.\n";

namespace {

const char *kCat[] = {"unchanged", "zero", "base_memory", "base_disk", "self", "data", "delta"};

// Bytes of the launch VM that differ from the base at the same position.
uint64_t changed_bytes(const cloudlet_overlay_info *i) {
	return (i->memory_chunks - i->memory[CLOUDLET_CHUNK_UNCHANGED] + i->disk_chunks - i->disk[CLOUDLET_CHUNK_UNCHANGED]) *
	       4096;
}

json_object *info_json(const cloudlet_overlay_info *i) {
	json_object *o = json_object_new_object();
	json_object_object_add(o, "path", json_object_new_string(i->path));
	json_object_object_add(o, "base_id", json_object_new_string(i->base_id));
	json_object_object_add(o, "codec", json_object_new_string(i->codec));
	if (*i->domain)
		json_object_object_add(o, "domain", json_object_new_string(i->domain));
	for (int space = 0; space < 2; space++) {
		json_object *s = json_object_new_object();
		json_object_object_add(s, "chunks", json_object_new_uint64(space ? i->disk_chunks : i->memory_chunks));
		for (int k = 0; k < CLOUDLET_CHUNK_KINDS; k++)
			json_object_object_add(s, kCat[k], json_object_new_uint64(space ? i->disk[k] : i->memory[k]));
		json_object_object_add(o, space ? "disk" : "memory", s);
	}
	json_object_object_add(o, "segments", json_object_new_uint64(i->segments));
	json_object_object_add(o, "payload_bytes", json_object_new_uint64(i->payload_bytes));
	json_object_object_add(o, "stored_bytes", json_object_new_uint64(i->stored_bytes));
	json_object_object_add(o, "file_bytes", json_object_new_uint64(i->file_bytes));
	json_object_object_add(o, "device_state_bytes", json_object_new_uint64(i->device_state_bytes));
	uint64_t changed = changed_bytes(i);
	json_object_object_add(o, "changed_bytes", json_object_new_uint64(changed));
	json_object_object_add(o, "ratio", json_object_new_double(i->file_bytes ? double(changed) / double(i->file_bytes) : 0));
	json_object_object_add(o, "memory_shifted", json_object_new_uint64(i->memory_shifted));
	json_object_object_add(o, "disk_shifted", json_object_new_uint64(i->disk_shifted));
	if (i->total_seconds > 0) {
		json_object *t = json_object_new_object();
		json_object_object_add(t, "capture", json_object_new_double(i->capture_seconds));
		json_object_object_add(t, "disks", json_object_new_double(i->disk_seconds));
		json_object_object_add(t, "total", json_object_new_double(i->total_seconds));
		json_object_object_add(o, "timings_seconds", t);
	}
	return o;
}

void print_info(const cloudlet_overlay_info *i) {
	printf("%s: overlay for base %.16s, %s, %s in %llu segments\n", i->path, i->base_id, i->codec,
	       human_bytes(i->file_bytes).c_str(), static_cast<unsigned long long>(i->segments));
	printf("  %-8s %10s %10s %8s %11s %9s %7s %8s %8s\n", "", "chunks", "unchanged", "zero", "base mem", "base disk",
	       "self", "data", "delta");
	for (int space = 0; space < 2; space++) {
		const uint64_t *n = space ? i->disk : i->memory;
		printf("  %-8s %10llu %10llu %8llu %11llu %9llu %7llu %8llu %8llu\n", space ? "disk" : "memory",
		       static_cast<unsigned long long>(space ? i->disk_chunks : i->memory_chunks),
		       static_cast<unsigned long long>(n[0]), static_cast<unsigned long long>(n[1]),
		       static_cast<unsigned long long>(n[2]), static_cast<unsigned long long>(n[3]),
		       static_cast<unsigned long long>(n[4]), static_cast<unsigned long long>(n[5]),
		       static_cast<unsigned long long>(n[6]));
	}
	// The launch VM's RAM and virtual disk size would flatter the ratio: an
	// overlay stands for what differs from the base.
	uint64_t changed = changed_bytes(i);
	printf("  stored   %s of chunk data -> %s compressed (%llu memory, %llu disk deltas at a byte shift)\n",
	       human_bytes(i->payload_bytes).c_str(), human_bytes(i->stored_bytes).c_str(),
	       static_cast<unsigned long long>(i->memory_shifted), static_cast<unsigned long long>(i->disk_shifted));
	printf("  changed  %s of the launch VM differs from its base (of %s memory and disk): %.1fx smaller\n",
	       human_bytes(changed).c_str(), human_bytes((i->memory_chunks + i->disk_chunks) * 4096).c_str(),
	       i->file_bytes ? double(changed) / double(i->file_bytes) : 0.0);
	if (i->total_seconds > 0)
		printf("  timings  capture+dedup %.2f s, disks %.2f s, total %.2f s\n", i->capture_seconds, i->disk_seconds,
		       i->total_seconds);
}

} // namespace

int cmd_overlay(const Global &g, Args args) {
	std::string codec, level, threads;
	bool has_codec = args.value("--codec", &codec), has_level = args.value("--level", &level);
	bool has_threads = args.value("--threads", &threads);
	bool stop = args.flag("--stop");
	std::vector<std::string> pos = args.positional("overlay");
	if (pos.empty())
		throw Failure{"overlay needs a subcommand (see cloudlet overlay --help)", 2};
	std::string sub = pos[0];
	pos.erase(pos.begin());
	cloudlet_overlay_options o = CLOUDLET_OVERLAY_OPTIONS_INIT;
	if (has_codec) {
		if (codec != "zstd" && codec != "lzma" && codec != "none" && codec != "auto")
			throw Failure{"--codec must be zstd, lzma, none or auto", 2};
		o.codec = codec.c_str();
	}
	exclusive("--codec none", has_codec && codec == "none", "--level", has_level);
	if (has_level) // xz presets stop at 9, zstd levels at 22
		o.level = static_cast<int>(parse_number("--level", level, 0, has_codec && codec == "lzma" ? 9 : 22));
	o.stop = stop;
	if (has_threads)
		o.threads = static_cast<unsigned>(parse_number("--threads", threads, 1, 256));
	if ((sub == "info" && (has_codec || has_level || stop || has_threads)) || (sub != "info" && sub != "create"))
		throw Failure{"unknown subcommand or option for 'overlay " + sub + "' (see cloudlet overlay --help)", 2};
	if (pos.size() != (sub == "create" ? 2u : 1u))
		throw Failure{sub == "create" ? "overlay create takes DOMAIN and FILE" : "overlay info takes FILE", 2};
	cloudlet_ctx *ctx = open_context(g);
	ProgressSink progress = make_progress(g);
	o.progress = ProgressSink::callback;
	o.progress_userdata = &progress;
	o.cancel = interrupt_cancel();
	cloudlet_overlay_info *info = nullptr;
	cloudlet_status st = sub == "create" ? cloudlet_overlay_create(&info, ctx, pos[0].c_str(), pos[1].c_str(), &o)
	                                     : cloudlet_overlay_inspect(&info, ctx, pos[0].c_str(), &o);
	progress.finish();
	cloudlet_ctx_free(ctx);
	check(st, ("overlay " + sub + " failed").c_str());
	if (g.json)
		print_json(info_json(info));
	else if (!g.quiet)
		print_info(info);
	cloudlet_overlay_info_free(info);
	return 0;
}

} // namespace cli
