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

int domain_state(virDomainPtr dom) {
	int state = 0, reason = 0;
	if (virDomainGetState(dom, &state, &reason, 0) < 0)
		fail_libvirt(std::string("cannot read the state of domain ") + virDomainGetName(dom));
	return state;
}

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

void resume(virDomainPtr dom) {
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
		fail_libvirt(std::string("cannot resume domain ") + virDomainGetName(dom));
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

std::string release(virDomainPtr dom, bool was_running, bool stop, const std::string &done, bool keep_paused) {
	if (stop) {
		if (virDomainDestroy(dom) < 0)
			fail_libvirt(done + ", but domain " + virDomainGetName(dom) + " could not be shut off");
		return "shut off";
	}
	if (was_running && !keep_paused) {
		resume(dom);
		return "running";
	}
	return "paused";
}

} // namespace cloudlet::virt
