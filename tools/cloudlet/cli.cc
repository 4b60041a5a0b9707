#include "cli.h"

#include <unistd.h>

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
	throw f;
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

bool Args::flag(const std::string &name) {
	for (auto it = args_.begin(); it != args_.end(); ++it)
		if (*it == name) {
			args_.erase(it);
			return true;
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
			return true;
		}
		if (it->rfind(name + "=", 0) == 0) {
			*out = it->substr(name.size() + 1);
			args_.erase(it);
			return true;
		}
	}
	return false;
}

std::vector<std::string> Args::positional(const std::string &command) {
	for (const auto &a : args_)
		if (a.size() > 1 && a[0] == '-')
			throw Failure{"unknown option '" + a + "' for '" + command + "' (see --help)", 2};
	return args_;
}

} // namespace cli
