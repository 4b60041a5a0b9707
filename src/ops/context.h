// The library context behind cloudlet_ctx: resolved settings, the logger,
// and the libvirt connection, opened on first use and shared by all
// operations on the context.
#pragma once

#include "util/log.h"
#include "virt/connection.h"

#include <memory>
#include <mutex>
#include <string>

namespace cloudlet::ops {

struct Settings {
	std::string libvirt_uri;
	std::string store_dir;
	std::string cpu_model;
	unsigned worker_threads = 0;
};

// Fills unset fields with the documented defaults (docs/api.md) and
// validates the rest; throws CLOUDLET_E_INVALID_ARG on bad values.
Settings resolve_settings(Settings s);

class Context {
public:
	Context(Settings settings, Logger logger);
	const Settings &settings() const { return settings_; }
	const Logger &log() const { return log_; }

	// The shared connection; opens it on first use (thread-safe).
	std::shared_ptr<virt::Connection> connection();

private:
	Settings settings_;
	Logger log_;
	std::mutex mu_;
	std::shared_ptr<virt::Connection> conn_;
};

} // namespace cloudlet::ops
