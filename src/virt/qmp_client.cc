#include "virt/qmp_client.h"

#include "util/error.h"
#include "virt/connection.h"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include <cstdlib>
#include <mutex>

namespace cloudlet::virt {

qemu::JsonPtr QmpClient::execute(const std::string &command, json_object *arguments) {
	return execute_with_fds(command, arguments, {});
}

qemu::JsonPtr QmpClient::execute_with_fds(const std::string &command, json_object *arguments,
                                          const std::vector<int> &fds) {
	std::string msg = qemu::qmp_command(command, arguments);
	char *reply = nullptr;
	int rc;
	if (fds.empty()) {
		rc = virDomainQemuMonitorCommand(dom_, msg.c_str(), &reply, 0);
	} else {
		std::vector<int> copy(fds);
		rc = virDomainQemuMonitorCommandWithFiles(dom_, msg.c_str(), static_cast<unsigned>(copy.size()),
		                                          copy.data(), nullptr, nullptr, &reply, 0);
	}
	if (rc < 0)
		fail_libvirt("QMP '" + command + "' on domain " + virDomainGetName(dom_));
	std::string text = reply ? reply : "";
	free(reply);
	return qemu::qmp_parse_reply(text, command);
}

namespace {

// Owned by libvirt (freed through its free callback, which may run after
// deregistration returns); `alive` stops calls once the subscription is gone.
struct EventHolder {
	std::mutex mu;
	bool alive = true;
	QmpClient::EventCallback cb;
};

void on_event(virConnectPtr, virDomainPtr, const char *event, long long seconds, unsigned int micros,
              const char *details, void *opaque) {
	auto *h = static_cast<EventHolder *>(opaque);
	std::lock_guard lk(h->mu);
	if (!h->alive)
		return;
	try {
		h->cb(qemu::qmp_event_from_parts(event, seconds, micros, details));
	} catch (...) {
		// A malformed event or a throwing callback must not unwind into libvirt.
	}
}

void free_holder(void *opaque) { delete static_cast<EventHolder *>(opaque); }

class Subscription : public QmpEventSubscription {
public:
	Subscription(virConnectPtr conn, int id, EventHolder *h) : conn_(conn), id_(id), h_(h) {
		virConnectRef(conn_);
	}
	~Subscription() override {
		{
			// Waits for a running callback; none starts afterwards.
			std::lock_guard lk(h_->mu);
			h_->alive = false;
		}
		if (virConnectDomainQemuMonitorEventDeregister(conn_, id_) < 0)
			virResetLastError();
		virConnectClose(conn_);
	}

private:
	virConnectPtr conn_;
	int id_;
	EventHolder *h_; // freed by libvirt
};

} // namespace

std::unique_ptr<QmpEventSubscription> QmpClient::subscribe(const std::string &event, EventCallback callback) {
	auto *h = new EventHolder();
	h->cb = std::move(callback);
	virConnectPtr conn = virDomainGetConnect(dom_);
	int id = virConnectDomainQemuMonitorEventRegister(conn, dom_, event.empty() ? nullptr : event.c_str(),
	                                                  on_event, h, free_holder, 0);
	if (id < 0) {
		delete h;
		fail_libvirt("cannot subscribe to QMP event '" + event + "' of domain " + virDomainGetName(dom_));
	}
	return std::make_unique<Subscription>(conn, id, h);
}

} // namespace cloudlet::virt
