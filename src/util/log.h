// Logging inside the library: a sink set per context (the caller's
// callback), filtered by level before any formatting work is done.
#pragma once

#include <cloudlet.h>

#include <string>

namespace cloudlet {

class Logger {
public:
	Logger() = default;
	Logger(cloudlet_log_cb cb, void *userdata, cloudlet_log_level level)
	    : cb_(cb), userdata_(userdata), level_(level) {}

	bool enabled(cloudlet_log_level level) const { return cb_ && level <= level_; }
	void log(cloudlet_log_level level, const std::string &message) const {
		if (enabled(level))
			cb_(level, message.c_str(), userdata_);
	}
	void error(const std::string &m) const { log(CLOUDLET_LOG_ERROR, m); }
	void warn(const std::string &m) const { log(CLOUDLET_LOG_WARN, m); }
	void info(const std::string &m) const { log(CLOUDLET_LOG_INFO, m); }
	void debug(const std::string &m) const { log(CLOUDLET_LOG_DEBUG, m); }

private:
	cloudlet_log_cb cb_ = nullptr;
	void *userdata_ = nullptr;
	cloudlet_log_level level_ = CLOUDLET_LOG_WARN;
};

} // namespace cloudlet
