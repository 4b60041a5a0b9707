#include "virt/domain.h"

#include "util/error.h"
#include "util/xml.h"
#include "virt/qmp_client.h"

#include <libvirt/virterror.h>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace cloudlet::virt {

DomainPtr lookup_domain(const Connection &conn, const std::string &name_or_uuid) {
	DomainPtr d(virDomainLookupByName(conn.get(), name_or_uuid.c_str()));
	if (!d)
		d.reset(virDomainLookupByUUIDString(conn.get(), name_or_uuid.c_str()));
	if (!d) {
		virResetLastError();
		fail(CLOUDLET_E_NOT_FOUND, "no domain named '" + name_or_uuid + "' on " + conn.uri());
	}
	return d;
}

DomainPtr find_domain(const Connection &conn, const std::string &name) {
	DomainPtr d(virDomainLookupByName(conn.get(), name.c_str()));
	virResetLastError();
	return d;
}

DomainPtr find_domain_by_uuid(const Connection &conn, const std::string &uuid) {
	DomainPtr d(virDomainLookupByUUIDString(conn.get(), uuid.c_str()));
	virResetLastError();
	return d;
}

DomainPtr require_domain(const Connection &conn, const std::string &name, const std::string &what) {
	DomainPtr d(virDomainLookupByName(conn.get(), name.c_str()));
	if (!d)
		fail_libvirt(what);
	return d;
}

std::string domain_name(virDomainPtr dom) {
	const char *n = virDomainGetName(dom);
	return n ? n : "";
}

std::string domain_uuid(virDomainPtr dom) {
	char uuid[VIR_UUID_STRING_BUFLEN] = "";
	if (virDomainGetUUIDString(dom, uuid) < 0)
		fail_libvirt("cannot read the UUID of domain " + domain_name(dom));
	return uuid;
}

bool is_active(virDomainPtr dom) {
	int r = virDomainIsActive(dom);
	if (r < 0)
		virResetLastError();
	return r == 1;
}

int domain_state(virDomainPtr dom) {
	int state = 0, reason = 0;
	if (virDomainGetState(dom, &state, &reason, 0) < 0)
		fail_libvirt(std::string("cannot read the state of domain ") + virDomainGetName(dom));
	return state;
}

bool RunState::running() const { return state == VIR_DOMAIN_RUNNING; }
bool RunState::paused() const { return state == VIR_DOMAIN_PAUSED; }

RunState run_state(virDomainPtr dom) { return RunState{domain_state(dom)}; }

const char *state_name(int state) {
	switch (state) {
	case VIR_DOMAIN_RUNNING: return "running";
	case VIR_DOMAIN_BLOCKED: return "blocked";
	case VIR_DOMAIN_PAUSED: return "paused";
	case VIR_DOMAIN_SHUTDOWN: return "shutting down";
	case VIR_DOMAIN_SHUTOFF: return "shut off";
	case VIR_DOMAIN_CRASHED: return "crashed";
	case VIR_DOMAIN_PMSUSPENDED: return "suspended by the guest";
	default: return "in an unknown state";
	}
}

std::string save_xml(virDomainPtr dom) {
	char *x = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_MIGRATABLE);
	if (!x)
		fail_libvirt(std::string("cannot read the XML of domain ") + virDomainGetName(dom));
	std::string s = x;
	free(x);
	return s;
}

std::string virt_type(virDomainPtr dom) {
	auto doc = xml::parse(save_xml(dom), "the XML of domain " + std::string(virDomainGetName(dom)));
	xmlNode *root = xmlDocGetRootElement(doc.get());
	auto t = root ? xml::attr(root, "type") : std::nullopt;
	return t ? *t : "";
}

void pause(virDomainPtr dom, const std::string &what) {
	if (virDomainSuspend(dom) < 0)
		fail_libvirt(what);
}

void resume(virDomainPtr dom, const std::string &what) {
	auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
	while (domain_state(dom) == VIR_DOMAIN_RUNNING && std::chrono::steady_clock::now() < deadline) {
		// libvirt may not have seen QEMU's STOP event yet; QEMU knows.
		qemu::JsonPtr st = QmpClient(dom).execute("query-status");
		json_object *running = nullptr;
		if (json_object_object_get_ex(st.get(), "running", &running) && json_object_get_boolean(running))
			return; // really running
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	}
	if (domain_state(dom) == VIR_DOMAIN_RUNNING) {
		QmpClient(dom).execute("cont");
		return;
	}
	if (virDomainResume(dom) < 0)
		fail_libvirt(what.empty() ? "cannot resume domain " + domain_name(dom) : what);
}

void restore_run_state(virDomainPtr dom, bool was_running, const Logger &log) {
	try {
		if (was_running && domain_state(dom) == VIR_DOMAIN_PAUSED)
			resume(dom);
	} catch (const Error &e) {
		log.error(std::string("after the failure, domain ") + virDomainGetName(dom) + " could not be resumed: " +
		          e.what());
	}
}

std::string release(virDomainPtr dom, bool was_running, bool stop, const std::string &done) {
	if (stop) {
		if (virDomainDestroy(dom) < 0)
			fail_libvirt(done + ", but domain " + virDomainGetName(dom) + " could not be shut off");
		return "shut off";
	}
	if (was_running) {
		resume(dom);
		return "running";
	}
	return "paused";
}

void restore_domain(const Connection &conn, const std::string &path, const std::string &what) {
	if (virDomainRestoreFlags(conn.get(), path.c_str(), nullptr, VIR_DOMAIN_SAVE_RUNNING) != 0)
		fail_libvirt(what);
}

// One flag set for every domain we remove, the union of what each remover
// needed. What gets removed is a VM whose state now lives elsewhere (the
// handoff's source) or that never became anyone's (a launch that failed,
// one a dead operation started), so nothing of it may stay: plain undefine
// refuses a persistent domain with a managed-save image, snapshot or
// checkpoint metadata, or (firmware) NVRAM, and the definition would stay,
// pointing at removed files. NVRAM is what launch cleanup passed before;
// instances are transient, so for them destroy alone removes everything
// and the undefine is skipped.
constexpr unsigned kUndefineFlags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                                    VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | VIR_DOMAIN_UNDEFINE_NVRAM;

std::string destroy_and_undefine(virDomainPtr dom) {
	std::string why_not;
	if (virDomainDestroy(dom) != 0)
		why_not = take_libvirt_error();
	if (virDomainIsPersistent(dom) == 1)
		virDomainUndefineFlags(dom, kUndefineFlags);
	virResetLastError();
	return why_not;
}

} // namespace cloudlet::virt
