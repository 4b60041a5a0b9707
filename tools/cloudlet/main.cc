// cloudlet: the command-line tool over libcloudlet's public C ABI.
//
//   cloudlet [--connect URI] [--store DIR] [--json] [--quiet] NOUN [VERB] ARGS...
//
// Global options may stand anywhere on the line. Exit 0 on success; on
// failure a single "cloudlet: error: ..." line on stderr and a non-zero
// status (2 for usage errors, 130 when interrupted).
#include "cli.h"

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>

namespace {

const char *usage =
    "usage: cloudlet [GLOBAL OPTIONS] COMMAND [ARGS...]\n"
    "\n"
    "Cloudlets on stock libvirt/QEMU: base VMs, VM overlays, VM synthesis, VM handoff.\n"
    "\n"
    "Commands:\n"
    "  doctor            what this host can do (libvirt, QEMU, KVM/TCG, CPU model, ACPI, store)\n"
    "  snapshot info     what a libvirt save image or QEMU migration stream holds\n"
    "  snapshot capture  a running domain's memory into a save image, optionally live\n"
    "  base ...          base VMs: create, list, show, remove, export, import, resume\n"
    "  overlay ...       VM overlays: create, info\n"
    "  synthesize OVERLAY  start an overlay's launch VM (file or URL) on this cloudlet\n"
    "  handoff ...       move a running VM to another cloudlet: send, receive\n"
    "  instance remove NAME  delete the files of an instance whose VM is gone\n"
    "\n"
    "Global options (anywhere on the line):\n"
    "  --connect URI     libvirt URI (default qemu:///system as root, else qemu:///session)\n"
    "  --store DIR       base VM store (default /var/lib/cloudlet as root, else\n"
    "                    $XDG_DATA_HOME/cloudlet)\n"
    "  --json            print exactly one JSON document on stdout\n"
    "  --quiet           no progress and no warnings\n"
    "  --verbose         the library's debug log on stderr\n"
    "  --help            help (also: cloudlet COMMAND --help)\n"
    "  --version         print the version\n"
    "\n"
    "Environment: CLOUDLET_CPU_MODEL overrides the enforced guest CPU model (core2duo).\n";

struct Command {
	std::function<int(const cli::Global &, cli::Args)> run;
	const char *help;
};

const std::map<std::string, Command> &commands() {
	static const std::map<std::string, Command> c = {
	    {"doctor", {cli::cmd_doctor, cli::doctor_help}},
	    {"snapshot info", {cli::cmd_snapshot_info, cli::snapshot_info_help}},
	    {"snapshot capture", {cli::cmd_snapshot_capture, cli::snapshot_capture_help}},
	    {"base", {cli::cmd_base, cli::base_help}},
	    {"overlay", {cli::cmd_overlay, cli::overlay_help}},
	    {"synthesize", {cli::cmd_synthesize, cli::synthesize_help}},
	    {"handoff", {cli::cmd_handoff, cli::handoff_help}},
	    {"instance", {cli::cmd_instance, cli::instance_help}},
	};
	return c;
}

} // namespace

int main(int argc, char **argv) {
	cli::Global g;
	std::vector<std::string> rest;
	bool help = false, version = false;
	try {
		for (int i = 1; i < argc; i++) {
			std::string a = argv[i];
			auto take = [&](const char *name, std::string *out) {
				std::string n = name;
				if (a == n) {
					if (i + 1 >= argc)
						throw cli::Failure{"option " + n + " needs a value", 2};
					*out = argv[++i];
					return true;
				}
				if (a.rfind(n + "=", 0) == 0) {
					*out = a.substr(n.size() + 1);
					return true;
				}
				return false;
			};
			if (take("--connect", &g.connect) || take("--store", &g.store))
				continue;
			if (a == "--json")
				g.json = true;
			else if (a == "--quiet" || a == "-q")
				g.quiet = true;
			else if (a == "--verbose" || a == "-v")
				g.verbose = true;
			else if (a == "--help" || a == "-h")
				help = true;
			else if (a == "--version")
				version = true;
			else
				rest.push_back(a);
		}
		if (version) {
			printf("cloudlet %s\n", cloudlet_version_string());
			return 0;
		}
		if (rest.empty()) {
			fputs(usage, help ? stdout : stderr);
			return help ? 0 : 2;
		}
		// Nouns with verbs ("base create") are looked up as two words first.
		auto it = commands().end();
		size_t used = 0;
		if (rest.size() >= 2)
			it = commands().find(rest[0] + " " + rest[1]), used = 2;
		if (it == commands().end())
			it = commands().find(rest[0]), used = 1;
		if (it == commands().end())
			throw cli::Failure{"unknown command '" + rest[0] + "' (see cloudlet --help)", 2};
		if (help) {
			fputs(it->second.help, stdout);
			return 0;
		}
		return it->second.run(g, cli::Args(std::vector<std::string>(rest.begin() + static_cast<long>(used), rest.end())));
	} catch (const cli::Failure &f) {
		fprintf(stderr, "cloudlet: error: %s\n", f.message.c_str());
		return f.code;
	} catch (const std::exception &e) {
		fprintf(stderr, "cloudlet: error: %s\n", e.what());
		return 1;
	}
}
