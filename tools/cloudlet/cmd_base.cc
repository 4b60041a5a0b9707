// cloudlet base create|list|show|remove|export|import|resume
#include "cli.h"

#include <cstdio>

namespace cli {

const char *base_help =
    "usage: cloudlet base create DOMAIN [--name NAME] [--stop]\n"
    "       cloudlet base list\n"
    "       cloudlet base show BASE [--verify]\n"
    "       cloudlet base remove BASE\n"
    "       cloudlet base export BASE FILE\n"
    "       cloudlet base import FILE [--name NAME]\n"
    "       cloudlet base resume BASE [--name NAME] [--uuid UUID] [--virt-type qemu|kvm]\n"
    "                            [--mac MAC | --network NAME]\n"
    "\n"
    "Base VMs live in the store (--store DIR). BASE is an ID, a name, or an ID\n"
    "prefix of at least 8 digits. create pauses the running DOMAIN, captures its\n"
    "memory, copies its disks, indexes and hashes everything; the domain is then\n"
    "left as it was (or shut off with --stop). show verifies the base (--verify:\n"
    "re-hash every file) and exits 1 if it is corrupt. resume starts a new\n"
    "instance with copy-on-write disks, a fresh name, UUID (or --uuid) and MAC.\n"
    "All take --json.\n";

namespace {

json_object *base_json(const cloudlet_base_info *b) {
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(b->id));
	json_object_object_add(o, "name", json_object_new_string(b->name));
	json_object_object_add(o, "status", json_object_new_string(b->status));
	if (*b->problem)
		json_object_object_add(o, "problem", json_object_new_string(b->problem));
	json_object_object_add(o, "created", json_object_new_string(b->created));
	json_object_object_add(o, "source_domain", json_object_new_string(b->source_domain));
	json_object_object_add(o, "dir", json_object_new_string(b->dir));
	json_object_object_add(o, "virt_type", json_object_new_string(b->virt_type));
	json_object_object_add(o, "machine", json_object_new_string(b->machine));
	json_object_object_add(o, "cpu_model", json_object_new_string(b->cpu_model));
	if (b->version >= 2 && *b->imported_from)
		json_object_object_add(o, "imported_from", json_object_new_string(b->imported_from));
	json_object_object_add(o, "memory_bytes", json_object_new_uint64(b->memory_bytes));
	json_object_object_add(o, "total_bytes", json_object_new_uint64(b->total_bytes));
	if (b->version >= 2)
		json_object_object_add(o, "allocated_bytes", json_object_new_uint64(b->allocated_bytes));
	json_object *parts = json_object_new_array();
	for (size_t i = 0; i < b->part_count; i++) {
		json_object *p = json_object_new_object();
		json_object_object_add(p, "file", json_object_new_string(b->parts[i].file));
		json_object_object_add(p, "role", json_object_new_string(b->parts[i].role));
		if (*b->parts[i].target)
			json_object_object_add(p, "target", json_object_new_string(b->parts[i].target));
		json_object_object_add(p, "bytes", json_object_new_uint64(b->parts[i].size));
		if (b->version >= 2)
			json_object_object_add(p, "allocated_bytes", json_object_new_uint64(b->part_allocated_bytes[i]));
		json_object_object_add(p, "sha256", json_object_new_string(b->parts[i].sha256));
		json_object_array_add(parts, p);
	}
	json_object_object_add(o, "parts", parts);
	json_object *t = json_object_new_object();
	json_object_object_add(t, "capture", json_object_new_double(b->capture_seconds));
	json_object_object_add(t, "disks", json_object_new_double(b->disk_seconds));
	json_object_object_add(t, "hashing", json_object_new_double(b->hash_seconds));
	json_object_object_add(t, "total", json_object_new_double(b->total_seconds));
	json_object_object_add(o, "timings_seconds", t);
	return o;
}

// "4.0 GiB (1.0 GiB allocated)", or the size alone when all of it is.
std::string sizes(const cloudlet_base_info *b, uint64_t size, uint64_t allocated) {
	if (b->version < 2 || allocated >= size)
		return human_bytes(size);
	return human_bytes(size) + " (" + human_bytes(allocated) + " allocated)";
}

void print_base(const cloudlet_base_info *b) {
	printf("%s  %s  %s\n", b->id, b->name, b->status);
	if (*b->problem)
		printf("  problem      %s\n", b->problem);
	if (b->version >= 2 && *b->imported_from)
		printf("  imported     %s from %s\n", b->created, b->imported_from);
	else
		printf("  created      %s from domain %s\n", b->created, b->source_domain);
	printf("  machine      %s, CPU %s, %s RAM, created under %s\n", b->machine, b->cpu_model,
	       human_bytes(b->memory_bytes).c_str(), b->virt_type);
	printf("  stored       %s in %s\n", sizes(b, b->total_bytes, b->version >= 2 ? b->allocated_bytes : 0).c_str(),
	       b->dir);
	for (size_t i = 0; i < b->part_count; i++)
		printf("    %-16s %-17s %10s  %.16s…%s\n", b->parts[i].file, b->parts[i].role,
		       human_bytes(b->parts[i].size).c_str(), b->parts[i].sha256,
		       b->version >= 2 && b->part_allocated_bytes[i] < b->parts[i].size
		           ? ("  " + human_bytes(b->part_allocated_bytes[i]) + " allocated").c_str()
		           : "");
	if (b->total_seconds > 0)
		printf("  timings      capture %.2f s, disks %.2f s, hashing %.2f s, total %.2f s\n", b->capture_seconds,
		       b->disk_seconds, b->hash_seconds, b->total_seconds);
}

struct Session {
	cloudlet_ctx *ctx;
	ProgressSink progress;
	explicit Session(const Global &g) : ctx(open_context(g)), progress(make_progress(g)) {}
	~Session() { cloudlet_ctx_free(ctx); }
	cloudlet_base_options options() {
		cloudlet_base_options o = CLOUDLET_BASE_OPTIONS_INIT;
		o.progress = ProgressSink::callback;
		o.progress_userdata = &progress;
		o.cancel = interrupt_cancel();
		return o;
	}
};

void usage(const std::string &msg) { throw Failure{msg + " (see cloudlet base --help)", 2}; }

} // namespace

int cmd_base(const Global &g, Args args) {
	std::string name, virt_type, uuid, mac, network;
	bool has_name = args.value("--name", &name), has_uuid = args.value("--uuid", &uuid);
	bool has_mac = args.value("--mac", &mac), has_net = args.value("--network", &network);
	bool has_vt = args.value("--virt-type", &virt_type);
	bool stop = args.flag("--stop"), verify = args.flag("--verify");
	std::vector<std::string> pos = args.positional("base");
	if (pos.empty())
		usage("base needs a subcommand");
	const std::string sub = pos[0];
	pos.erase(pos.begin());
	auto want = [&](size_t n, const char *what) {
		if (pos.size() != n)
			usage(std::string("base ") + sub + " takes " + what);
	};
	exclusive("--mac", has_mac, "--network", has_net);
	if ((has_name && sub != "create" && sub != "import" && sub != "resume") || ((has_vt || has_uuid || has_mac || has_net) && sub != "resume") ||
	    (stop && sub != "create") || (verify && sub != "show"))
		usage("option not valid for base " + sub);

	Session s(g);
	cloudlet_base_options o = s.options();
	if (has_name)
		o.name = name.c_str();
	if (sub == "create" || sub == "show" || sub == "import") {
		cloudlet_base_info *b = nullptr;
		cloudlet_status st;
		if (sub == "create") {
			want(1, "DOMAIN");
			o.stop = stop;
			st = cloudlet_base_create(&b, s.ctx, pos[0].c_str(), &o);
		} else if (sub == "show") {
			want(1, "BASE");
			o.full_verify = verify;
			st = cloudlet_base_show(&b, s.ctx, pos[0].c_str(), &o);
		} else {
			want(1, "FILE");
			st = cloudlet_base_import(&b, s.ctx, pos[0].c_str(), &o);
		}
		s.progress.finish();
		check(st, ("base " + sub + " failed").c_str());
		bool corrupt = std::string(b->status) == "corrupt";
		if (g.json)
			print_json(base_json(b));
		else if (!g.quiet)
			print_base(b);
		cloudlet_base_info_free(b);
		return corrupt ? 1 : 0;
	}
	if (sub == "list") {
		want(0, "no arguments");
		cloudlet_base_list *l = nullptr;
		check(cloudlet_base_list_get(&l, s.ctx), "base list failed");
		if (g.json) {
			json_object *a = json_object_new_array();
			for (size_t i = 0; i < l->count; i++)
				json_object_array_add(a, base_json(l->bases[i]));
			print_json(a);
		} else if (l->count == 0) {
			const char *dir = nullptr;
			cloudlet_ctx_settings(nullptr, &dir, nullptr, nullptr, s.ctx);
			printf("no base VMs in the store %s\n", quoted(dir ? dir : "").c_str());
		} else {
			for (size_t i = 0; i < l->count; i++) {
				const cloudlet_base_info *b = l->bases[i];
				printf("%.16s  %-24s %10s %10s  %s\n", b->id, b->name, human_bytes(b->total_bytes).c_str(),
				       b->version >= 2 ? human_bytes(b->allocated_bytes).c_str() : "-", b->created);
			}
		}
		cloudlet_base_list_free(l);
		return 0;
	}
	if (sub == "remove") {
		want(1, "BASE");
		check(cloudlet_base_remove(s.ctx, pos[0].c_str()), "base remove failed");
		if (g.json) {
			json_object *j = json_object_new_object();
			json_object_object_add(j, "removed", json_object_new_string(pos[0].c_str()));
			print_json(j);
		}
		return 0;
	}
	if (sub == "export") {
		want(2, "BASE and FILE");
		cloudlet_status st = cloudlet_base_export(s.ctx, pos[0].c_str(), pos[1].c_str(), &o);
		s.progress.finish();
		check(st, "base export failed");
		if (g.json) {
			json_object *j = json_object_new_object();
			json_object_object_add(j, "exported", json_object_new_string(pos[0].c_str()));
			json_object_object_add(j, "path", json_object_new_string(pos[1].c_str()));
			print_json(j);
		}
		return 0;
	}
	if (sub == "resume") {
		want(1, "BASE");
		if (has_vt && virt_type != "qemu" && virt_type != "kvm")
			usage("--virt-type must be qemu or kvm");
		cloudlet_resume_options ro = CLOUDLET_RESUME_OPTIONS_INIT;
		ro.name = has_name ? name.c_str() : nullptr;
		ro.virt_type = has_vt ? virt_type.c_str() : nullptr;
		ro.uuid = has_uuid ? uuid.c_str() : nullptr;
		ro.mac = has_mac ? mac.c_str() : nullptr;
		ro.network = has_net ? network.c_str() : nullptr;
		ro.progress = ProgressSink::callback;
		ro.progress_userdata = &s.progress;
		ro.cancel = interrupt_cancel();
		cloudlet_instance_info *r = nullptr;
		cloudlet_status st = cloudlet_base_resume(&r, s.ctx, pos[0].c_str(), &ro);
		s.progress.finish();
		check(st, "base resume failed");
		if (g.json) {
			json_object *j = json_object_new_object();
			json_object_object_add(j, "name", json_object_new_string(r->name));
			json_object_object_add(j, "uuid", json_object_new_string(r->uuid));
			json_object_object_add(j, "base_id", json_object_new_string(r->base_id));
			json_object_object_add(j, "dir", json_object_new_string(r->dir));
			json_object_object_add(j, "virt_type", json_object_new_string(r->virt_type));
			json_object *macs = json_object_new_array();
			for (size_t i = 0; i < r->nic_count; i++)
				json_object_array_add(macs, json_object_new_string(r->macs[i]));
			json_object_object_add(j, "macs", macs);
			json_object *t = json_object_new_object();
			json_object_object_add(t, "restore", json_object_new_double(r->restore_seconds));
			json_object_object_add(t, "nic", json_object_new_double(r->nic_seconds));
			json_object_object_add(t, "total", json_object_new_double(r->seconds));
			json_object_object_add(j, "timings_seconds", t);
			print_json(j);
		} else if (!g.quiet) {
			printf("resumed %s (%s) from base %.16s in %.2f s under %s\n", r->name, r->uuid, r->base_id, r->seconds,
			       r->virt_type);
			for (size_t i = 0; i < r->nic_count; i++)
				printf("  NIC          %s replaced by %s\n", r->old_macs[i], r->macs[i]);
			printf("  files        %s\n", r->dir);
		}
		cloudlet_instance_info_free(r);
		return 0;
	}
	usage("unknown subcommand 'base " + sub + "'");
	return 2;
}

} // namespace cli
