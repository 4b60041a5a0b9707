// libvirt adapter: one connection to a libvirt daemon, with libvirt's
// errors turned into cloudlet::Error (never printed to stderr).
#pragma once

#include <libvirt/libvirt.h>

#include <memory>
#include <string>

namespace cloudlet::virt {

// Throws Error(CLOUDLET_E_LIBVIRT, "<what>: <libvirt's last error>").
[[noreturn]] void fail_libvirt(const std::string &what);

// libvirt's last error message on this thread, which is then cleared;
// "unknown libvirt error" when there is none.
std::string take_libvirt_error();

// Formats a libvirt version number (major*1e6 + minor*1e3 + micro).
std::string format_version(unsigned long v);

class Connection {
public:
	// Opens a read-write connection to `uri`; throws on failure.
	explicit Connection(const std::string &uri);
	~Connection();
	Connection(const Connection &) = delete;
	Connection &operator=(const Connection &) = delete;

	virConnectPtr get() const { return conn_; }
	std::string uri() const;
	std::string libvirt_version() const;   // the daemon's libvirt
	std::string hypervisor_version() const; // QEMU's
	std::string hostname() const;
	bool is_local() const;                 // the daemon shares our filesystem
	std::string capabilities() const;
	// Domain capabilities for x86_64, machine `machine`, virt type `virt_type`.
	std::string domain_capabilities(const std::string &virt_type, const std::string &machine) const;

private:
	virConnectPtr conn_ = nullptr;
	std::string requested_uri_;
};

// A domain reference, freed (not destroyed) on scope exit. Above virt/ it is
// an opaque handle: operations pass dom.get() to virt/ functions and call
// no libvirt function themselves.
struct DomainFree {
	void operator()(virDomain *d) const { virDomainFree(d); }
};
using DomainPtr = std::unique_ptr<virDomain, DomainFree>;
// What DomainPtr::get() gives: a reference the callee does not own.
using DomainRef = virDomain *;

} // namespace cloudlet::virt
