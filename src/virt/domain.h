// Small libvirt domain helpers shared by operations: lookup, identity, run
// state, pause/resume that agree with what QEMU is really doing, removal.
// The operations (src/ops/) reach libvirt's domains only through these.
#pragma once

#include "util/log.h"
#include "virt/connection.h"

#include <string>

namespace cloudlet::virt {

// By name, else by UUID. Throws CLOUDLET_E_NOT_FOUND.
DomainPtr lookup_domain(const Connection &conn, const std::string &name_or_uuid);

// By name, or by UUID; null when there is none (libvirt's error cleared).
// For "does it exist" questions.
DomainPtr find_domain(const Connection &conn, const std::string &name);
DomainPtr find_domain_by_uuid(const Connection &conn, const std::string &uuid);

// By name, for a domain that must exist (one we just created): throws
// CLOUDLET_E_LIBVIRT "<what>: <libvirt's reason>" when it does not.
DomainPtr require_domain(const Connection &conn, const std::string &name, const std::string &what);

std::string domain_name(virDomainPtr dom);
std::string domain_uuid(virDomainPtr dom); // "xxxxxxxx-xxxx-...", lower case

// Whether it runs in QEMU at all (running or paused); false if libvirt
// cannot tell (a domain that just went away).
bool is_active(virDomainPtr dom);

// libvirt's run state: VIR_DOMAIN_RUNNING, VIR_DOMAIN_PAUSED ...
int domain_state(virDomainPtr dom);
const char *state_name(int state); // "running", "paused", "shut off" ...

// The run state in the terms operations decide by.
struct RunState {
	int state = 0; // libvirt's (domain_state)
	bool running() const;
	bool paused() const;
	const char *name() const { return state_name(state); }
};
RunState run_state(virDomainPtr dom); // throws CLOUDLET_E_LIBVIRT

// The domain's XML as a save image carries it (secure + migratable).
std::string save_xml(virDomainPtr dom);

// The domain's virt type: "kvm", "qemu" (TCG) ... (the root's type attribute).
std::string virt_type(virDomainPtr dom);

// Resumes the vCPUs. QEMU may have paused them behind libvirt's back (the
// final pass of a migration we started over QMP): libvirt learns that from
// an event a moment later, so wait for it to agree before asking it to
// resume, and fall back to QMP `cont` if it never does. If libvirt
// refuses, throws CLOUDLET_E_LIBVIRT "<what>: <libvirt's reason>" (what:
// "cannot resume domain <name>" unless given).
void resume(virDomainPtr dom, const std::string &what = "");

// Pauses the vCPUs; QEMU then flushes every block device to its file
// (its vm_stop drains and flushes them), so the disks may be read.
// Throws CLOUDLET_E_LIBVIRT "<what>: <libvirt's reason>".
void pause(virDomainPtr dom, const std::string &what);

// After an operation that paused the domain failed: running again if it ran
// before (QEMU itself restarts a VM it paused for a migration's final pass
// that then failed, so this is often a no-op). Best effort: never throws;
// what went wrong is logged.
void restore_run_state(virDomainPtr dom, bool was_running, const Logger &log);

// After it succeeded: shut off with `stop`, else running again if it ran
// before. Returns the state it is left in ("shut off", "running",
// "paused"). `done` names what was achieved, for the error if the domain
// cannot be shut off.
std::string release(virDomainPtr dom, bool was_running, bool stop, const std::string &done);

// Restores the save image at `path` as a running domain (libvirt's own
// restore from a file). Throws CLOUDLET_E_LIBVIRT "<what>: <libvirt's reason>".
void restore_domain(const Connection &conn, const std::string &path, const std::string &what);

// Removes a domain from this host for good: shut off (virDomainDestroy),
// then, if persistent, undefined with what libvirt would otherwise refuse
// to undefine it with. Best effort, never throws, libvirt's error cleared:
// returns "" once it is shut off, else libvirt's reason why not (the
// undefine is silent: a definition that stays is harmless, the VM is off).
std::string destroy_and_undefine(virDomainPtr dom);

} // namespace cloudlet::virt
