// Small libvirt domain helpers shared by operations: lookup, run state,
// pause/resume that agree with what QEMU is really doing.
#pragma once

#include "util/log.h"
#include "virt/connection.h"

#include <string>

namespace cloudlet::virt {

// By name, else by UUID. Throws CLOUDLET_E_NOT_FOUND.
DomainPtr lookup_domain(const Connection &conn, const std::string &name_or_uuid);

// libvirt's run state: VIR_DOMAIN_RUNNING, VIR_DOMAIN_PAUSED ...
int domain_state(virDomainPtr dom);
const char *state_name(int state); // "running", "paused", "shut off" ...

// The domain's XML as a save image carries it (secure + migratable).
std::string save_xml(virDomainPtr dom);

// The domain's virt type: "kvm", "qemu" (TCG) ... (the root's type attribute).
std::string virt_type(virDomainPtr dom);

// Resumes the vCPUs. QEMU may have paused them behind libvirt's back (the
// final pass of a migration we started over QMP): libvirt learns that from
// an event a moment later, so wait for it to agree before asking it to
// resume, and fall back to QMP `cont` if it never does.
void resume(virDomainPtr dom);

// After an operation that paused the domain failed: running again if it ran
// before (QEMU itself restarts a VM it paused for a migration's final pass
// that then failed, so this is often a no-op). Best effort: never throws;
// what went wrong is logged.
void restore_run_state(virDomainPtr dom, bool was_running, const Logger &log);

// After it succeeded: shut off with `stop`, else running again if it ran
// before (unless `keep_paused`). Returns the state it is left in
// ("shut off", "running", "paused"). `done` names what was achieved, for the
// error if the domain cannot be shut off.
std::string release(virDomainPtr dom, bool was_running, bool stop, const std::string &done,
                    bool keep_paused = false);

} // namespace cloudlet::virt
