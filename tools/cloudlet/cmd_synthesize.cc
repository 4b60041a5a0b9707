// cloudlet synthesize OVERLAY
#include "cli.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace cli {

const char *synthesize_help =
    "usage: cloudlet synthesize OVERLAY [--base ID|NAME] [--name NAME] [--uuid UUID] [--virt-type qemu|kvm]\n"
    "                           [--mac MAC | --network NAME | --nic-xml FILE] [--threads N]\n"
    "                           [--ca-file FILE] [--max-download BYTES] [--stall-timeout SECONDS]\n"
    "                           [--early-start]\n"
    "\n"
    "Starts the launch VM of OVERLAY (a file, or an http:// or https:// URL read as\n"
    "a stream) on this cloudlet: the overlay's base must be in the store (--base\n"
    "insists on one). Nothing is created if the overlay, the base, the CPU model\n"
    "or the disk space is not right, and a failure later removes what was made.\n"
    "The VM gets fresh NICs: --mac sets the first one's MAC, --network the libvirt\n"
    "network of all, --nic-xml the first one's whole <interface> element.\n"
    "--early-start runs the VM as soon as QEMU has its device state, its memory\n"
    "following by postcopy, the pages it touches first (docs/early-start.md).\n"
    "Prints the new VM and a timing breakdown (--json for a document).\n";

namespace {

json_object *strings(const char *const *v, size_t n) {
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

const char *kCat[] = {"unchanged", "zero", "base_memory", "base_disk", "self", "data", "delta"};

json_object *info_json(const cloudlet_synthesis_info *i) {
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(i->name));
	json_object_object_add(o, "uuid", json_object_new_string(i->uuid));
	json_object_object_add(o, "base_id", json_object_new_string(i->base_id));
	json_object_object_add(o, "dir", json_object_new_string(i->dir));
	json_object_object_add(o, "virt_type", json_object_new_string(i->virt_type));
	json_object_object_add(o, "source", json_object_new_string(i->source));
	json_object_object_add(o, "macs", strings(i->macs, i->nic_count));
	json_object_object_add(o, "old_macs", strings(i->old_macs, i->nic_count));
	json_object_object_add(o, "overlay_bytes", json_object_new_uint64(i->overlay_bytes));
	json_object_object_add(o, "memory_chunks", json_object_new_uint64(i->memory_chunks));
	json_object_object_add(o, "disk_chunks", json_object_new_uint64(i->disk_chunks));
	json_object *r = json_object_new_object();
	for (int k = 1; k < CLOUDLET_CHUNK_KINDS; k++)
		json_object_object_add(r, kCat[k], json_object_new_uint64(i->records[k]));
	json_object_object_add(o, "records", r);
	json_object_object_add(o, "disk_layer_bytes", json_object_new_uint64(i->disk_layer_bytes));
	json_object *t = json_object_new_object();
	json_object_object_add(t, "fetch", json_object_new_double(i->fetch_seconds));
	json_object_object_add(t, "decompress", json_object_new_double(i->decompress_seconds));
	json_object_object_add(t, "apply", json_object_new_double(i->apply_seconds));
	json_object_object_add(t, "read", json_object_new_double(i->read_seconds));
	json_object_object_add(t, "restore", json_object_new_double(i->restore_seconds));
	json_object_object_add(t, "nic_swap", json_object_new_double(i->nic_seconds));
	json_object_object_add(t, "total", json_object_new_double(i->total_seconds));
	json_object_object_add(o, "timings_seconds", t);
	json_object_object_add(o, "early_start", json_object_new_boolean(i->early_start));
	if (i->early_start) {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "running_seconds", json_object_new_double(i->running_seconds));
		json_object_object_add(e, "demand_requests", json_object_new_uint64(i->demand_requests));
		json_object_object_add(e, "demand_pages", json_object_new_uint64(i->demand_pages));
		json_object_object_add(e, "background_pages", json_object_new_uint64(i->background_pages));
		json_object_object_add(e, "held_pages", json_object_new_uint64(i->held_pages));
		json_object_object_add(o, "postcopy", e);
	}
	return o;
}

void print_info(const cloudlet_synthesis_info *i) {
	printf("synthesized %s (%s) from %s\n", i->name, i->virt_type, i->source);
	printf("  base     %.16s, files in %s\n", i->base_id, i->dir);
	printf("  overlay  %s read; launch VM %s memory + %s disk; disk layers %s\n", human_bytes(i->overlay_bytes).c_str(),
	       human_bytes(i->memory_chunks * 4096).c_str(), human_bytes(i->disk_chunks * 4096).c_str(),
	       human_bytes(i->disk_layer_bytes).c_str());
	for (size_t k = 0; k < i->nic_count; k++)
		printf("  NIC      %s (was %s)\n", i->macs[k], i->old_macs[k]);
	printf("  timings  fetch %.2f s, decompress %.2f s, apply %.2f s (pipeline %.2f s), restore %.2f s, "
	       "NIC swap %.2f s, total %.2f s\n",
	       i->fetch_seconds, i->decompress_seconds, i->apply_seconds, i->read_seconds, i->restore_seconds,
	       i->nic_seconds, i->total_seconds);
	if (i->early_start)
		printf("  early    running after %.2f s; memory by postcopy: %llu pages asked for (%llu requests, "
		       "%llu of them waited for the overlay), %llu behind them\n",
		       i->running_seconds, static_cast<unsigned long long>(i->demand_pages),
		       static_cast<unsigned long long>(i->demand_requests), static_cast<unsigned long long>(i->held_pages),
		       static_cast<unsigned long long>(i->background_pages));
}

} // namespace

int cmd_synthesize(const Global &g, Args args) {
	std::string base, name, uuid, virt, mac, network, nic_file, threads, ca, max_dl, stall;
	bool has_base = args.value("--base", &base), has_name = args.value("--name", &name);
	bool has_uuid = args.value("--uuid", &uuid);
	bool has_virt = args.value("--virt-type", &virt), has_mac = args.value("--mac", &mac);
	bool has_net = args.value("--network", &network), has_nic = args.value("--nic-xml", &nic_file);
	bool has_threads = args.value("--threads", &threads), has_ca = args.value("--ca-file", &ca);
	bool has_max = args.value("--max-download", &max_dl), has_stall = args.value("--stall-timeout", &stall);
	bool early = args.flag("--early-start");
	std::vector<std::string> pos = args.positional("synthesize");
	if (pos.size() != 1)
		throw Failure{"synthesize takes one OVERLAY (a file or an http(s) URL)", 2};
	// --nic-xml gives the whole NIC; --mac and --network are its parts.
	exclusive("--nic-xml", has_nic, "--mac", has_mac);
	exclusive("--nic-xml", has_nic, "--network", has_net);
	exclusive("--mac", has_mac, "--network", has_net);
	cloudlet_synthesis_options o = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
	if (has_base)
		o.base = base.c_str();
	if (has_name)
		o.name = name.c_str();
	if (has_uuid)
		o.uuid = uuid.c_str();
	if (has_virt) {
		if (virt != "qemu" && virt != "kvm")
			throw Failure{"--virt-type must be qemu or kvm", 2};
		o.virt_type = virt.c_str();
	}
	if (has_mac)
		o.mac = mac.c_str();
	if (has_net)
		o.network = network.c_str();
	if (has_threads)
		o.threads = static_cast<unsigned>(parse_number("--threads", threads, 1, 256));
	if (has_ca)
		o.ca_file = ca.c_str();
	if (has_max)
		o.max_download_bytes = parse_number("--max-download", max_dl, 1, UINT64_MAX);
	if (has_stall)
		o.stall_timeout_seconds = static_cast<unsigned>(parse_number("--stall-timeout", stall, 1, 3600));
	if (early)
		o.flags |= CLOUDLET_SYNTHESIS_EARLY_START;
	// Files are read once the line is known to be right (usage errors first).
	std::string nic_xml;
	if (has_nic) {
		std::ifstream f(nic_file);
		if (!f) {
			int e = errno; // std::ifstream over open(2): glibc leaves its errno
			throw Failure{"cannot read the --nic-xml file " + quoted(nic_file) + ": " + strerror(e), 1,
			              e == EACCES ? CLOUDLET_E_PERMISSION : e == ENOENT ? CLOUDLET_E_NOT_FOUND : CLOUDLET_E_IO};
		}
		std::stringstream ss;
		ss << f.rdbuf();
		nic_xml = ss.str();
		o.nic_xml = nic_xml.c_str();
	}
	cloudlet_ctx *ctx = open_context(g);
	ProgressSink progress = make_progress(g);
	o.progress = ProgressSink::callback;
	o.progress_userdata = &progress;
	o.cancel = interrupt_cancel();
	cloudlet_synthesis_info *info = nullptr;
	cloudlet_status st = cloudlet_synthesize(&info, ctx, pos[0].c_str(), &o);
	progress.finish();
	cloudlet_ctx_free(ctx);
	check(st, "synthesis failed");
	if (g.json)
		print_json(info_json(info));
	else if (!g.quiet)
		print_info(info);
	cloudlet_synthesis_info_free(info);
	return 0;
}

} // namespace cli
