// A domain started to receive a postcopy migration from us (docs/early-start.md).
// libvirt's restore cannot do postcopy (it waits for the whole image and
// never sets the capability), so the domain is created from its XML with
// QEMU's `-incoming defer` (libvirt's <qemu:commandline>), paused, and the
// incoming migration is driven over QMP: `migrate-set-capabilities`
// postcopy-ram, `getfd` of our socket's other end, `migrate-incoming fd:`.
// A socket (not a FIFO) because QEMU opens its return path on the same
// channel. libvirt marks such a domain tainted (custom-argv,
// custom-monitor) and otherwise treats it as a domain it started paused.
#pragma once

#include "util/unique_fd.h"
#include "virt/connection.h"

#include <string>

namespace cloudlet::virt {

// The domain XML with `-incoming defer` added for QEMU.
std::string incoming_defer_xml(const std::string &domain_xml);

// Whether QEMU, as libvirt runs it here, may use userfaultfd: postcopy's
// destination needs it. Root QEMU may; an unprivileged one only with
// vm.unprivileged_userfaultfd = 1 (QEMU 7.2 calls the syscall and not
// /dev/userfaultfd). `why` says what decided.
bool postcopy_possible(std::string &why);

class IncomingPostcopy {
public:
	// Creates the (transient) domain paused and starts its incoming
	// migration; our end of the socket is fd(). Throws CLOUDLET_E_LIBVIRT
	// with libvirt's or QEMU's reason; on a throw the domain is gone.
	IncomingPostcopy(virConnectPtr conn, const std::string &domain_xml);
	virDomainPtr domain() const { return dom_.get(); }
	int fd() const { return fd_.get(); }
	// Ends QEMU at once (the domain is destroyed): for a start that must not
	// wait for a QEMU that waits for us.
	void abandon();

private:
	DomainPtr dom_;
	UniqueFd fd_;
};

} // namespace cloudlet::virt
