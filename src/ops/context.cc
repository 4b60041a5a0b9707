#include "ops/context.h"

#include "virt/event_loop.h"

#include "util/error.h"

#include <unistd.h>

#include <cstdlib>
#include <thread>

namespace cloudlet::ops {

namespace {

bool valid_cpu_model(const std::string &m) {
	if (m.empty() || m.size() > 64)
		return false;
	for (char c : m)
		if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
			return false;
	return true;
}

std::string default_store() {
	if (geteuid() == 0)
		return "/var/lib/cloudlet";
	const char *xdg = getenv("XDG_DATA_HOME");
	if (xdg && *xdg == '/')
		return std::string(xdg) + "/cloudlet";
	const char *home = getenv("HOME");
	if (!home || *home != '/')
		fail(CLOUDLET_E_INVALID_ARG, "no store directory given and neither XDG_DATA_HOME nor HOME is set");
	return std::string(home) + "/.local/share/cloudlet";
}

} // namespace

Settings resolve_settings(Settings s) {
	if (s.libvirt_uri.empty())
		s.libvirt_uri = geteuid() == 0 ? "qemu:///system" : "qemu:///session";
	if (s.store_dir.empty())
		s.store_dir = default_store();
	if (s.store_dir[0] != '/')
		fail(CLOUDLET_E_INVALID_ARG, "store directory must be an absolute path: '" + s.store_dir + "'");
	if (s.cpu_model.empty())
		s.cpu_model = "core2duo";
	if (!valid_cpu_model(s.cpu_model))
		fail(CLOUDLET_E_INVALID_ARG, "invalid CPU model name '" + s.cpu_model + "'");
	if (s.worker_threads == 0)
		s.worker_threads = std::max(1u, std::thread::hardware_concurrency());
	if (s.worker_threads > 1024)
		fail(CLOUDLET_E_INVALID_ARG, "worker_threads " + std::to_string(s.worker_threads) + " is above 1024");
	return s;
}

Context::Context(Settings settings, Logger logger)
    : settings_(resolve_settings(std::move(settings))), log_(logger) {}

std::shared_ptr<virt::Connection> Context::connection() {
	std::lock_guard<std::mutex> lock(mu_);
	if (!conn_) {
		// Events (QMP MIGRATION, STOP ...) reach only connections opened
		// after an event loop exists.
		if (!virt::ensure_event_loop())
			log_.warn("no libvirt event loop could be set up; QMP events will not arrive");
		log_.debug("connecting to " + settings_.libvirt_uri);
		conn_ = std::make_shared<virt::Connection>(settings_.libvirt_uri);
	}
	return conn_;
}

} // namespace cloudlet::ops
