#include "cli.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

namespace cli {

void check(cloudlet_status st, const char *what) {
	if (st == CLOUDLET_OK)
		return;
	std::string detail = cloudlet_last_error_message();
	Failure f;
	f.message = std::string(what) + ": " + (detail.empty() ? cloudlet_strerror(st) : detail);
	f.code = st == CLOUDLET_E_CANCELLED ? 130 : 1;
	f.status = st;
	throw f;
}

const char *status_name(cloudlet_status st) {
	switch (st) {
	case CLOUDLET_OK: return "ok";
	case CLOUDLET_E_INVALID_ARG: return "invalid_arg";
	case CLOUDLET_E_NOMEM: return "nomem";
	case CLOUDLET_E_VERSION: return "version";
	case CLOUDLET_E_IO: return "io";
	case CLOUDLET_E_LIBVIRT: return "libvirt";
	case CLOUDLET_E_NOT_FOUND: return "not_found";
	case CLOUDLET_E_EXISTS: return "exists";
	case CLOUDLET_E_CORRUPT: return "corrupt";
	case CLOUDLET_E_UNSUPPORTED: return "unsupported";
	case CLOUDLET_E_HOST: return "host";
	case CLOUDLET_E_CANCELLED: return "cancelled";
	case CLOUDLET_E_TIMEOUT: return "timeout";
	case CLOUDLET_E_PERMISSION: return "permission";
	case CLOUDLET_E_BUSY: return "busy";
	case CLOUDLET_E_INTERNAL: return "internal";
	}
	return "unknown";
}

void report(const Global &g, const Failure &f) {
	// One line on stderr, whatever the message holds.
	std::string line = f.message;
	for (char &c : line)
		if (c == '\n' || c == '\r')
			c = ' ';
	fprintf(stderr, "cloudlet: error: %s\n", line.c_str());
	if (g.json)
		print_json(error_document(f));
	fflush(stdout);
}

json_object *error_document(const Failure &f) {
	json_object *e = json_object_new_object();
	json_object_object_add(e, "status", json_object_new_string(status_name(f.status)));
	json_object_object_add(e, "code", json_object_new_int(f.status));
	json_object_object_add(e, "exit_status", json_object_new_int(f.code));
	json_object_object_add(e, "message", json_object_new_string(f.message.c_str()));
	json_object *doc = json_object_new_object();
	json_object_object_add(doc, "error", e);
	return doc;
}

namespace {
std::string scaled_text(uint64_t v, unsigned decimals) {
	std::string s = std::to_string(v);
	if (decimals == 0)
		return s;
	if (s.size() <= decimals)
		s.insert(0, decimals + 1 - s.size(), '0');
	s.insert(s.size() - decimals, ".");
	while (s.back() == '0')
		s.pop_back();
	if (s.back() == '.')
		s.pop_back();
	return s;
}
} // namespace

uint64_t parse_number(const std::string &option, const std::string &text, uint64_t lo, uint64_t hi,
                      unsigned decimals) {
	auto refuse = [&] {
		std::string what = decimals ? "a number" : "a whole number";
		std::string tail = decimals ? " (at most " + std::to_string(decimals) + " decimals)" : "";
		throw Failure{option + " takes " + what + " from " + scaled_text(lo, decimals) + " to " +
		                  scaled_text(hi, decimals) + tail + ", not '" + text + "'",
		              2};
	};
	uint64_t v = 0;
	size_t i = 0, digits = 0;
	auto push = [&](char c) {
		uint64_t d = static_cast<uint64_t>(c - '0');
		if (v > (UINT64_MAX - d) / 10)
			refuse(); // overflow
		v = v * 10 + d;
	};
	for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; i++, digits++)
		push(text[i]);
	if (digits == 0)
		refuse();
	unsigned frac = 0;
	if (i < text.size() && text[i] == '.' && decimals > 0) {
		for (i++; i < text.size() && text[i] >= '0' && text[i] <= '9'; i++, frac++) {
			if (frac == decimals)
				refuse();
			push(text[i]);
		}
		if (frac == 0)
			refuse(); // "5."
	}
	if (i != text.size())
		refuse();
	for (; frac < decimals; frac++) {
		if (v > UINT64_MAX / 10)
			refuse();
		v *= 10;
	}
	if (v < lo || v > hi)
		refuse();
	return v;
}

void exclusive(const std::string &a, bool has_a, const std::string &b, bool has_b) {
	if (has_a && has_b)
		throw Failure{"options " + a + " and " + b + " exclude each other; give one of them", 2};
}

std::string quoted(const std::string &s) {
	return "'" + s + "'";
}

namespace {
void log_to_stderr(cloudlet_log_level level, const char *message, void *) {
	static const char *names[] = {"error", "warning", "info", "debug"};
	fprintf(stderr, "cloudlet: %s: %s\n", names[level], message);
}
} // namespace

cloudlet_ctx *open_context(const Global &g) {
	cloudlet_ctx_options o = CLOUDLET_CTX_OPTIONS_INIT;
	if (!g.connect.empty())
		o.libvirt_uri = g.connect.c_str();
	if (!g.store.empty())
		o.store_dir = g.store.c_str();
	if (const char *m = getenv("CLOUDLET_CPU_MODEL"); m && *m)
		o.cpu_model = m;
	o.log_cb = log_to_stderr;
	o.log_level = g.verbose ? CLOUDLET_LOG_DEBUG : (g.quiet ? CLOUDLET_LOG_ERROR : CLOUDLET_LOG_WARN);
	cloudlet_ctx *ctx = nullptr;
	check(cloudlet_ctx_new(&ctx, &o), "cannot create the library context");
	if (g.store.empty()) {
		// The default store of a user who never ran cloudlet: its parents
		// (~/.local/share) may not exist yet either. Created like mkdir -p,
		// missing parents 0700 as the XDG base directory spec asks; the store
		// itself is made by the library.
		const char *dir = nullptr;
		cloudlet_ctx_settings(nullptr, &dir, nullptr, nullptr, ctx);
		std::string path = dir ? dir : "";
		for (size_t at = path.find('/', 1); at != std::string::npos; at = path.find('/', at + 1)) {
			std::string parent = path.substr(0, at);
			if (mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST) {
				int e = errno;
				cloudlet_ctx_free(ctx);
				throw Failure{"cannot create the default store " + quoted(path) + ": cannot create " +
				                  quoted(parent) + ": " + strerror(e),
				              1, e == EACCES || e == EPERM ? CLOUDLET_E_PERMISSION : CLOUDLET_E_IO};
			}
		}
	}
	return ctx;
}

namespace {
cloudlet_cancel *g_cancel = nullptr;
void on_signal(int) {
	cloudlet_cancel_trigger(g_cancel);
}
} // namespace

cloudlet_cancel *interrupt_cancel() {
	if (!g_cancel) {
		check(cloudlet_cancel_new(&g_cancel), "cannot create a cancel handle");
		struct sigaction sa {};
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, nullptr);
		sigaction(SIGTERM, &sa, nullptr);
	}
	return g_cancel;
}

int ProgressSink::callback(const char *phase, uint64_t done, uint64_t total, void *self) {
	auto *p = static_cast<ProgressSink *>(self);
	if (!p->enabled)
		return 0;
	char line[160];
	if (total > 0) {
		int width = 30;
		int filled = static_cast<int>(done * static_cast<uint64_t>(width) / total);
		std::string bar(static_cast<size_t>(filled), '#');
		bar.resize(static_cast<size_t>(width), '.');
		snprintf(line, sizeof line, "\r%-16.16s [%s] %3d%%", phase, bar.c_str(),
		         static_cast<int>(done * 100 / total));
	} else {
		snprintf(line, sizeof line, "\r%-16.16s %llu", phase, static_cast<unsigned long long>(done));
	}
	fputs(line, stderr);
	fflush(stderr);
	p->last_phase = phase;
	return 0;
}

void ProgressSink::finish() {
	if (enabled && !last_phase.empty()) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
}

ProgressSink make_progress(const Global &g) {
	ProgressSink p;
	p.enabled = !g.json && !g.quiet && isatty(STDERR_FILENO);
	return p;
}

void print_json(json_object *doc) {
	puts(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(doc);
}

const char *tristate_word(cloudlet_tristate t) {
	return t == CLOUDLET_YES ? "yes" : t == CLOUDLET_NO ? "no" : "unknown";
}

json_object *tristate_json(cloudlet_tristate t) {
	return t == CLOUDLET_UNKNOWN ? nullptr : json_object_new_boolean(t == CLOUDLET_YES);
}

std::string human_bytes(uint64_t b) {
	const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = static_cast<double>(b);
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	char buf[32];
	snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
	return buf;
}

Args::Args(std::vector<std::string> args) {
	auto end = std::find(args.begin(), args.end(), "--");
	args_.assign(args.begin(), end);
	if (end != args.end())
		after_.assign(end + 1, args.end());
}

namespace {
void once_only(const std::vector<std::string> &args, const std::string &name) {
	for (const auto &a : args)
		if (a == name || a.rfind(name + "=", 0) == 0)
			throw Failure{"option " + name + " is given more than once", 2};
}
} // namespace

bool Args::flag(const std::string &name) {
	for (auto it = args_.begin(); it != args_.end(); ++it) {
		if (it->rfind(name + "=", 0) == 0)
			throw Failure{"option " + name + " takes no value", 2};
		if (*it == name) {
			args_.erase(it);
			once_only(args_, name);
			return true;
		}
	}
	return false;
}

bool Args::value(const std::string &name, std::string *out) {
	for (auto it = args_.begin(); it != args_.end(); ++it) {
		if (*it == name) {
			if (it + 1 == args_.end())
				throw Failure{"option " + name + " needs a value", 2};
			*out = *(it + 1);
			args_.erase(it, it + 2);
			once_only(args_, name);
			return true;
		}
		if (it->rfind(name + "=", 0) == 0) {
			*out = it->substr(name.size() + 1);
			args_.erase(it);
			once_only(args_, name);
			return true;
		}
	}
	return false;
}

std::vector<std::string> Args::positional(const std::string &command) {
	for (const auto &a : args_)
		if (a.size() > 1 && a[0] == '-')
			throw Failure{"unknown option " + a.substr(0, a.find('=')) + " for '" + command + "' (see cloudlet " +
			                  command + " --help)",
			              2};
	std::vector<std::string> all = args_;
	all.insert(all.end(), after_.begin(), after_.end());
	return all;
}

} // namespace cli
