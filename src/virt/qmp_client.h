// A QMP client over libvirt's QEMU monitor passthrough
// (virDomainQemuMonitorCommand / ...WithFiles). Chosen over a QMP socket of
// our own because libvirt already owns QEMU's monitor: a second monitor
// would need domain XML changes and QEMU-side socket permissions, and
// libvirt serialises our commands with its own. File descriptors (e.g. a
// migration pipe) are passed with the command (getfd/add-fd).
#pragma once

#include "qmp_message.h"

#include <libvirt/libvirt.h>

#include <string>
#include <vector>

namespace cloudlet::virt {

class QmpClient {
public:
	// Does not own the domain reference.
	explicit QmpClient(virDomainPtr dom) : dom_(dom) {}

	// Runs a command; returns its "return" value. QMP errors and libvirt
	// failures throw with the command named.
	qemu::JsonPtr execute(const std::string &command, json_object *arguments = nullptr);

	// Runs a command with file descriptors passed to QEMU alongside it.
	qemu::JsonPtr execute_with_fds(const std::string &command, json_object *arguments,
	                               const std::vector<int> &fds);

private:
	virDomainPtr dom_;
};

} // namespace cloudlet::virt
