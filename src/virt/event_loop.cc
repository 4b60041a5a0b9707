#include "virt/event_loop.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <mutex>
#include <thread>

namespace cloudlet::virt {

namespace {

void noop_timeout(int, void *) {}

bool setup() {
	// Nothing may touch libvirt's (thread-local) error state before this.
	if (virInitialize() < 0)
		return false;
	// virEventAddTimeout fails when no implementation is registered: the
	// cheapest way to learn whether the application brought its own loop.
	int probe = virEventAddTimeout(-1, noop_timeout, nullptr, nullptr);
	if (probe >= 0) {
		virEventRemoveTimeout(probe);
		return true;
	}
	virResetLastError();
	if (virEventRegisterDefaultImpl() < 0) {
		virResetLastError();
		return false;
	}
	// Runs for the life of the process, as libvirt's loop is meant to.
	std::thread([] {
		for (;;)
			if (virEventRunDefaultImpl() < 0)
				virResetLastError();
	}).detach();
	return true;
}

} // namespace

bool ensure_event_loop() {
	static std::once_flag once;
	static bool ok = false;
	std::call_once(once, [] { ok = setup(); });
	return ok;
}

} // namespace cloudlet::virt
