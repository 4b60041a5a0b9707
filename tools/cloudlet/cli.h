// Shared plumbing of the cloudlet CLI: global options, the context, output
// (human or one JSON document), progress on a TTY, and error reporting.
#pragma once

#include <cloudlet.h>
#include <json-c/json.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cli {

struct Global {
	std::string connect;   // --connect URI
	std::string store;     // --store DIR
	bool json = false;     // --json
	bool quiet = false;    // --quiet
	bool verbose = false;  // --verbose: library log to stderr
};

// A failed command: printed as "cloudlet: error: <message>" on stderr (one
// line), and with --json also as {"error": {...}} on stdout; exit `code`.
// `status` is the library status it stands for (usage errors, exit 2:
// CLOUDLET_E_INVALID_ARG).
struct Failure {
	std::string message;
	int code = 1;
	cloudlet_status status = CLOUDLET_E_INVALID_ARG;
};

// "invalid_arg", "not_found", ...: CLOUDLET_E_<NAME> in lower case.
const char *status_name(cloudlet_status st);

// Reports a failure: the stderr line, and the error document on stdout
// with --json (docs/cli.md "Errors").
void report(const Global &g, const Failure &f);
// The --json error document of `f`: {"error": {status, code, exit_status, message}}.
json_object *error_document(const Failure &f);

// The one parser of every numeric option: decimal digits only (no sign, no
// blanks, no hex, no suffix), with up to `decimals` digits after a '.'; the
// result is scaled by 10^decimals ("2.5" with decimals 3 is 2500) and must
// lie in [lo, hi] (also scaled). Anything else, overflow included, is a
// usage error naming the option.
uint64_t parse_number(const std::string &option, const std::string &text, uint64_t lo, uint64_t hi,
                      unsigned decimals = 0);

// Refuses options that do not go together: each pair is (name, given).
void exclusive(const std::string &a, bool has_a, const std::string &b, bool has_b);

// 'like this', for file names in messages.
std::string quoted(const std::string &s);

// Throws Failure with the library's thread-local detail when st != OK.
void check(cloudlet_status st, const char *what);

// Creates the context from the global options.
cloudlet_ctx *open_context(const Global &g);

// The cancel handle that SIGINT/SIGTERM trigger during long operations.
cloudlet_cancel *interrupt_cancel();

// Progress on stderr when it is a TTY and output is neither --json nor --quiet.
struct ProgressSink {
	bool enabled = false;
	std::string last_phase;
	static int callback(const char *phase, uint64_t done, uint64_t total, void *self);
	void finish();
};
ProgressSink make_progress(const Global &g);

// Prints a JSON document on stdout (exactly one per command) and frees it.
void print_json(json_object *doc);

const char *tristate_word(cloudlet_tristate t);
json_object *tristate_json(cloudlet_tristate t);
std::string human_bytes(uint64_t bytes);

// Options parsing for a command: pulls "--name VALUE" / "--name=VALUE" and
// flags out of args; unknown options are an error. A "--" ends the options:
// what follows it is positional, whatever it looks like.
class Args {
public:
	explicit Args(std::vector<std::string> args);
	// A flag given twice, or given a value ("--stop=1"), is a usage error.
	bool flag(const std::string &name);
	// An option given twice is a usage error.
	bool value(const std::string &name, std::string *out);
	// The remaining positional arguments; fails on unknown options.
	std::vector<std::string> positional(const std::string &command);

private:
	std::vector<std::string> args_;  // before "--"
	std::vector<std::string> after_; // after "--"
};

int cmd_doctor(const Global &g, Args args);
extern const char *doctor_help;
int cmd_snapshot_info(const Global &g, Args args);
extern const char *snapshot_info_help;
int cmd_snapshot(const Global &g, Args args);
extern const char *snapshot_help;
int cmd_snapshot_capture(const Global &g, Args args);
int cmd_base(const Global &g, Args args);
int cmd_overlay(const Global &g, Args args);
extern const char *overlay_help;
int cmd_synthesize(const Global &g, Args args);
int cmd_handoff(const Global &g, Args args);
extern const char *handoff_help;
int cmd_instance(const Global &g, Args args);
extern const char *instance_help;
extern const char *synthesize_help;
extern const char *base_help;
extern const char *snapshot_capture_help;

} // namespace cli
