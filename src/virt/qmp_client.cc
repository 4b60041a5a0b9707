#include "virt/qmp_client.h"

#include "util/error.h"
#include "virt/connection.h"

#include <libvirt/libvirt-qemu.h>

#include <cstdlib>

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

} // namespace cloudlet::virt
