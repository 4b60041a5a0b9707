// cloudlet: the command-line tool over libcloudlet's public C ABI.
//
//   cloudlet [--connect URI] [--store DIR] [--json] [--quiet] NOUN [VERB] ARGS...
//
// Global options may stand anywhere on the line before "--" (which ends
// all options). Exit 0 on success; on failure a single "cloudlet: error: ..."
// line on stderr (and with --json an {"error": ...} document on stdout) and a
// non-zero status (2 for usage errors, 130 when interrupted).
#include "cli.h"

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <new>

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
    "Global options (anywhere on the line before --):\n"
    "  --connect URI     libvirt URI (default qemu:///system as root, else qemu:///session)\n"
    "  --store DIR       base VM store (default /var/lib/cloudlet as root, else\n"
    "                    $XDG_DATA_HOME/cloudlet)\n"
    "  --json            print exactly one JSON document on stdout, errors included\n"
    "  --quiet           no progress and no warnings\n"
    "  --verbose         the library's debug log on stderr\n"
    "  --help            help (also: cloudlet COMMAND --help)\n"
    "  --version         print the version\n"
    "  --                end of options: what follows is a positional argument\n"
    "\n"
    "Environment: CLOUDLET_CPU_MODEL overrides the enforced guest CPU model (core2duo).\n";

struct Command {
	std::function<int(const cli::Global &, cli::Args)> run;
	const char *help;
};

const std::map<std::string, Command> &commands() {
	static const std::map<std::string, Command> c = {
	    {"doctor", {cli::cmd_doctor, cli::doctor_help}},
	    {"snapshot", {cli::cmd_snapshot, cli::snapshot_help}},
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

// --help with --json: {"command": "base", "help": "usage: ..."}.
json_object *help_json(const std::string &command, const char *text) {
	json_object *o = json_object_new_object();
	json_object_object_add(o, "command", command.empty() ? nullptr : json_object_new_string(command.c_str()));
	json_object_object_add(o, "help", json_object_new_string(text));
	return o;
}

} // namespace

int main(int argc, char **argv) {
	cli::Global g;
	std::vector<std::string> rest;     // before "--": command words and command options
	std::vector<std::string> operands; // after "--": positional, whatever they look like
	bool help = false, version = false, dashdash = false;
	// --json first: a usage error found before it on the line is a JSON
	// document too.
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--json") == 0)
			g.json = true;
	try {
		for (int i = 1; i < argc; i++) {
			std::string a = argv[i];
			if (dashdash) {
				operands.push_back(a);
				continue;
			}
			auto take = [&](const char *name, std::string *out) {
				std::string n = name;
				if (a == n) {
					if (i + 1 >= argc || strcmp(argv[i + 1], "--") == 0)
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
			if (a == "--")
				dashdash = true;
			else if (a == "--json")
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
			if (g.json) {
				int major = 0, minor = 0, patch = 0;
				cloudlet_version(&major, &minor, &patch);
				json_object *v = json_object_new_object();
				json_object_object_add(v, "version", json_object_new_string(cloudlet_version_string()));
				json_object_object_add(v, "major", json_object_new_int(major));
				json_object_object_add(v, "minor", json_object_new_int(minor));
				json_object_object_add(v, "patch", json_object_new_int(patch));
				cli::print_json(v);
			} else {
				printf("cloudlet %s\n", cloudlet_version_string());
			}
			return 0;
		}
		// An option before the command words is not a command.
		if (!rest.empty() && rest[0].size() > 1 && rest[0][0] == '-')
			throw cli::Failure{"unknown option " + rest[0].substr(0, rest[0].find('=')) + " (see cloudlet --help)", 2};
		// "cloudlet -- snapshot info FILE": the words may follow "--" too.
		std::vector<std::string> words = rest, tail;
		if (words.empty()) {
			words.swap(operands);
			dashdash = false; // the marker stands before the command: no options after it
			tail.push_back("--");
		}
		if (words.empty()) {
			if (help) {
				if (g.json)
					cli::print_json(help_json("", usage));
				else
					fputs(usage, stdout);
				return 0;
			}
			if (!g.json)
				fputs(usage, stderr);
			throw cli::Failure{"no command given (see cloudlet --help)", 2};
		}
		// Nouns with verbs ("base create") are looked up as two words first.
		auto it = commands().end();
		size_t used = 0;
		if (words.size() >= 2)
			it = commands().find(words[0] + " " + words[1]), used = 2;
		if (it == commands().end())
			it = commands().find(words[0]), used = 1;
		if (it == commands().end())
			throw cli::Failure{"unknown command '" + words[0] + "' (see cloudlet --help)", 2};
		if (help) {
			if (g.json)
				cli::print_json(help_json(it->first, it->second.help));
			else
				fputs(it->second.help, stdout);
			return 0;
		}
		std::vector<std::string> args(words.begin() + static_cast<long>(used), words.end());
		if (dashdash) {
			args.push_back("--");
			args.insert(args.end(), operands.begin(), operands.end());
		} else if (!tail.empty()) {
			args.insert(args.begin(), "--");
		}
		return it->second.run(g, cli::Args(std::move(args)));
	} catch (const cli::Failure &f) {
		cli::report(g, f);
		return f.code;
	} catch (const std::bad_alloc &) {
		cli::report(g, cli::Failure{"out of memory", 1, CLOUDLET_E_NOMEM});
		return 1;
	} catch (const std::exception &e) {
		cli::report(g, cli::Failure{e.what(), 1, CLOUDLET_E_INTERNAL});
		return 1;
	}
}
