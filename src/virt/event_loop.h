// libvirt delivers events (QMP events included) only to clients that run an
// event loop, registered before the connection is opened. A library cannot
// impose one on its caller, so: if the application already registered an
// implementation, we use it; otherwise we register libvirt's default one
// and run it on a thread of ours, once per process (docs/qmp.md).
#pragma once

namespace cloudlet::virt {

// Idempotent and thread-safe. Call before opening connections that should
// receive events. Returns false if no loop could be set up (events then
// never arrive; callers must not depend on them for correctness).
bool ensure_event_loop();

} // namespace cloudlet::virt
