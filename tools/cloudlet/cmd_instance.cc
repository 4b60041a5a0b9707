// cloudlet instance remove NAME
#include "cli.h"

namespace cli {

const char *instance_help =
    "usage: cloudlet instance remove NAME\n"
    "\n"
    "Instances (resumed, synthesized or received VMs) are transient libvirt\n"
    "domains whose private files (disk layers, logs) stay in the store when the\n"
    "domain is destroyed, since the disk layers may hold work. remove deletes the\n"
    "files of instance NAME; it refuses while a domain of that name runs. Takes\n"
    "--json.\n";

int cmd_instance(const Global &g, Args args) {
	std::vector<std::string> pos = args.positional("instance");
	if (pos.size() != 2 || pos[0] != "remove")
		throw Failure{"usage: cloudlet instance remove NAME", 2};
	cloudlet_ctx *ctx = open_context(g);
	cloudlet_status st = cloudlet_instance_remove(ctx, pos[1].c_str());
	cloudlet_ctx_free(ctx);
	check(st, "instance remove failed");
	if (g.json) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "removed", json_object_new_string(pos[1].c_str()));
		print_json(j);
	}
	return 0;
}

} // namespace cli
