// Small libvirt domain helpers shared by operations: lookup, run state,
// pause/resume that agree with what QEMU is really doing.
#pragma once

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

// Resumes the vCPUs. QEMU may have paused them behind libvirt's back (the
// final pass of a migration we started over QMP): libvirt learns that from
// an event a moment later, so wait for it to agree before asking it to
// resume, and fall back to QMP `cont` if it never does.
void resume(virDomainPtr dom);

} // namespace cloudlet::virt
