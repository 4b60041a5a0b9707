#include "virt/connection.h"

#include "util/error.h"

#include <libvirt/virterror.h>

#include <cstdlib>
#include <mutex>

namespace cloudlet::virt {

namespace {

// libvirt prints errors to stderr unless a handler is installed. We report
// errors through our own status and message instead.
void silent_error(void *, virErrorPtr) {}

void install_silent_handler() {
	static std::once_flag once;
	std::call_once(once, [] {
		virInitialize();
		virSetErrorFunc(nullptr, silent_error);
	});
}

std::string take_string(char *s, const std::string &what) {
	if (!s)
		fail_libvirt(what);
	std::string out = s;
	free(s);
	return out;
}

} // namespace

void fail_libvirt(const std::string &what) {
	throw Error(CLOUDLET_E_LIBVIRT, what + ": " + take_libvirt_error());
}

std::string take_libvirt_error() {
	const char *m = virGetLastErrorMessage();
	virErrorPtr e = virGetLastError();
	std::string msg = e && m ? m : "unknown libvirt error";
	virResetLastError();
	return msg;
}

std::string format_version(unsigned long v) {
	return std::to_string(v / 1000000) + "." + std::to_string((v / 1000) % 1000) + "." +
	       std::to_string(v % 1000);
}

Connection::Connection(const std::string &uri) : requested_uri_(uri) {
	install_silent_handler();
	conn_ = virConnectOpen(uri.c_str());
	if (!conn_)
		fail_libvirt("cannot connect to libvirt at '" + uri + "'");
	virConnSetErrorFunc(conn_, nullptr, silent_error);
}

Connection::~Connection() {
	if (conn_)
		virConnectClose(conn_);
}

std::string Connection::uri() const {
	return take_string(virConnectGetURI(conn_), "virConnectGetURI");
}

std::string Connection::libvirt_version() const {
	unsigned long v = 0;
	if (virConnectGetLibVersion(conn_, &v) < 0)
		fail_libvirt("virConnectGetLibVersion");
	return format_version(v);
}

std::string Connection::hypervisor_version() const {
	unsigned long v = 0;
	if (virConnectGetVersion(conn_, &v) < 0)
		fail_libvirt("virConnectGetVersion");
	return v ? format_version(v) : "";
}

std::string Connection::hostname() const {
	return take_string(virConnectGetHostname(conn_), "virConnectGetHostname");
}

bool Connection::is_local() const {
	// A unix-socket connection to this host's daemon: no hostname in the URI,
	// or the transport is unix. libvirt offers no direct query.
	std::string u = uri();
	auto p = u.find("://");
	if (p == std::string::npos)
		return true;
	std::string rest = u.substr(p + 3);
	return rest.empty() || rest[0] == '/' || u.find("+unix") != std::string::npos;
}

std::string Connection::capabilities() const {
	return take_string(virConnectGetCapabilities(conn_), "virConnectGetCapabilities");
}

std::string Connection::domain_capabilities(const std::string &virt_type,
                                            const std::string &machine) const {
	return take_string(virConnectGetDomainCapabilities(conn_, nullptr, "x86_64", machine.c_str(),
	                                                   virt_type.c_str(), 0),
	                   "domain capabilities for virt type '" + virt_type + "'");
}

} // namespace cloudlet::virt
