#include "virt/postcopy_incoming.h"

#include "util/error.h"
#include "util/small_file.h"
#include "util/xml.h"
#include "virt/domain.h"
#include "virt/qemu_migration.h"
#include "virt/qmp_client.h"

#include <libxml/tree.h>
#include <sys/socket.h>

#include "virt/guest_ram.h"

#include <signal.h>

#include <cerrno>
#include <optional>
#include <sstream>

namespace cloudlet::virt {

namespace {

constexpr const char *kQemuNs = "http://libvirt.org/schemas/domain/qemu/1.0";
constexpr const char *kFdName = "cloudlet-postcopy";

// A line `user = "root"` (or "+0") of qemu.conf, spaces allowed around the
// parts. (No std::regex: GCC 12's <regex> fails -Werror under the sanitizers.)
bool qemu_conf_user_is_root(const std::string &conf) {
	std::istringstream in(conf);
	for (std::string line; std::getline(in, line);) {
		size_t i = line.find_first_not_of(" \t");
		if (i == std::string::npos || line.compare(i, 4, "user") != 0)
			continue;
		i = line.find_first_not_of(" \t", i + 4);
		if (i == std::string::npos || line[i] != '=')
			continue;
		i = line.find_first_not_of(" \t", i + 1);
		if (i == std::string::npos)
			continue;
		std::string rest = line.substr(i);
		if (rest.rfind("\"root\"", 0) == 0 || rest.rfind("\"+0\"", 0) == 0)
			return true;
	}
	return false;
}

} // namespace

std::string incoming_defer_xml(const std::string &domain_xml) {
	auto doc = xml::parse(domain_xml, "domain XML");
	xmlNode *root = xmlDocGetRootElement(doc.get());
	xmlNs *ns = xmlSearchNsByHref(doc.get(), root, reinterpret_cast<const xmlChar *>(kQemuNs));
	if (!ns)
		ns = xmlNewNs(root, reinterpret_cast<const xmlChar *>(kQemuNs), reinterpret_cast<const xmlChar *>("qemu"));
	xmlNode *cl = xmlNewChild(root, ns, reinterpret_cast<const xmlChar *>("commandline"), nullptr);
	for (const char *v : {"-incoming", "defer"}) {
		xmlNode *a = xmlNewChild(cl, ns, reinterpret_cast<const xmlChar *>("arg"), nullptr);
		xmlNewProp(a, reinterpret_cast<const xmlChar *>("value"), reinterpret_cast<const xmlChar *>(v));
	}
	return xml::to_string(doc.get());
}

bool postcopy_possible(std::string &why) {
	std::optional<std::string> sysctl = read_small_file("/proc/sys/vm/unprivileged_userfaultfd", 64);
	if (!sysctl) {
		why = "this kernel has no vm.unprivileged_userfaultfd (no userfaultfd)";
		return false;
	}
	const std::string &v = *sysctl;
	if (!v.empty() && v[0] == '1') {
		why = "vm.unprivileged_userfaultfd = 1: QEMU may use userfaultfd";
		return true;
	}
	// QEMU as root may use it whatever the sysctl says.
	std::string conf = read_small_file("/etc/libvirt/qemu.conf", 1u << 20).value_or("");
	if (qemu_conf_user_is_root(conf)) {
		why = "libvirt runs QEMU as root, which may use userfaultfd";
		return true;
	}
	why = "vm.unprivileged_userfaultfd = 0 and libvirt runs QEMU unprivileged: QEMU cannot use userfaultfd "
	      "(sysctl -w vm.unprivileged_userfaultfd=1 allows it; docs/early-start.md)";
	return false;
}

IncomingPostcopy::IncomingPostcopy(virConnectPtr conn, const std::string &domain_xml) {
	std::string xml = incoming_defer_xml(domain_xml);
	dom_.reset(virDomainCreateXML(conn, xml.c_str(), VIR_DOMAIN_START_PAUSED));
	if (!dom_)
		fail_libvirt("cannot start the domain for its incoming migration");
	try {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
			fail_errno("cannot create the migration socket pair", errno);
		fd_.reset(sv[0]);
		UniqueFd theirs(sv[1]);
		QmpClient qmp(dom_.get());
		qmp.execute("migrate-set-capabilities", capability_args({{"postcopy-ram", true}}).get());
		qemu::JsonPtr args(json_object_new_object());
		json_object_object_add(args.get(), "fdname", json_object_new_string(kFdName));
		qmp.execute_with_fds("getfd", args.get(), {theirs.get()});
		qemu::JsonPtr margs(json_object_new_object());
		json_object_object_add(margs.get(), "uri", json_object_new_string((std::string("fd:") + kFdName).c_str()));
		qmp.execute("migrate-incoming", margs.get());
	} catch (...) {
		virDomainDestroy(dom_.get());
		throw;
	}
}

void IncomingPostcopy::abandon() {
	// A QEMU whose main loop waits in a page fault does not act on SIGTERM,
	// and libvirt's destroy waits 10 s before it sends SIGKILL: kill first.
	try {
		kill(qemu_pid(virDomainGetName(dom_.get())), SIGKILL);
	} catch (const Error &) {
	}
	virDomainDestroy(dom_.get());
}

} // namespace cloudlet::virt
