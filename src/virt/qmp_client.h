// A QMP client over libvirt's QEMU monitor passthrough
// (virDomainQemuMonitorCommand / ...WithFiles). Chosen over a QMP socket of
// our own because libvirt already owns QEMU's monitor: a second monitor
// would need domain XML changes and QEMU-side socket permissions, and
// libvirt serialises our commands with its own. File descriptors (e.g. a
// migration pipe) are passed with the command (getfd/add-fd).
#pragma once

#include "qmp_message.h"

#include <libvirt/libvirt.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cloudlet::virt {

// An event subscription; deregisters on destruction. After the destructor
// returns, the callback is not running and will not run again.
class QmpEventSubscription {
public:
	virtual ~QmpEventSubscription() = default;
};

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

	// Calls `callback` (on libvirt's event-loop thread) for each QMP event
	// named `event` ("" for all) that this domain's QEMU emits. Events need
	// an event loop registered before the connection was opened
	// (ensure_event_loop); without one, subscribing fails.
	using EventCallback = std::function<void(const qemu::QmpEvent &)>;
	std::unique_ptr<QmpEventSubscription> subscribe(const std::string &event, EventCallback callback);

private:
	virDomainPtr dom_;
};

} // namespace cloudlet::virt
