#include "virt/guest_ram.h"

#include "util/error.h"
#include "util/small_file.h"
#include "virt/qmp_client.h"

#include <sys/uio.h>

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <json-c/json.h>

namespace cloudlet::virt {

uint64_t parse_gpa2hva(const std::string &reply, const std::string &block) {
	std::string tag = "(" + block + ") is 0x";
	size_t at = reply.find(tag);
	if (at == std::string::npos)
		return 0;
	const char *p = reply.c_str() + at + tag.size();
	char *end = nullptr;
	errno = 0;
	unsigned long long v = strtoull(p, &end, 16);
	if (errno || end == p)
		return 0;
	return v;
}

// libvirt's system driver keeps each running domain's QEMU pid here.
pid_t qemu_pid(const std::string &name) {
	std::string path = "/run/libvirt/qemu/" + name + ".pid";
	std::optional<std::string> file;
	try {
		file = read_small_file(path, 64);
	} catch (const Error &e) {
		fail(CLOUDLET_E_UNSUPPORTED, "cannot find the QEMU process of " + name + ": " + e.what());
	}
	if (!file)
		fail(CLOUDLET_E_UNSUPPORTED, "cannot find the QEMU process of " + name + ": no " + path);
	std::string text = *file;
	char *end = nullptr;
	long pid = strtol(text.c_str(), &end, 10);
	if (pid <= 0 || end == text.c_str())
		fail(CLOUDLET_E_UNSUPPORTED, path + " does not hold a process id");
	// The process must be this domain's QEMU, not a recycled pid.
	std::optional<std::string> cmdline;
	try {
		cmdline = read_small_file("/proc/" + std::to_string(pid) + "/cmdline", 1 << 20);
	} catch (const Error &) {
	}
	if (!cmdline)
		fail(CLOUDLET_E_UNSUPPORTED, "the QEMU process " + std::to_string(pid) + " of " + name + " is gone");
	std::string cmd = *cmdline;
	for (char &c : cmd)
		if (c == '\0')
			c = ' ';
	if (cmd.find("guest=" + name + ",") == std::string::npos && cmd.find("-name " + name + " ") == std::string::npos)
		fail(CLOUDLET_E_UNSUPPORTED, "process " + std::to_string(pid) + " is not the QEMU of " + name);
	return static_cast<pid_t>(pid);
}

GuestRam::GuestRam(virDomainPtr dom, const std::string &block, uint64_t block_bytes) : bytes_(block_bytes) {
	std::string name = virDomainGetName(dom);
	what_ = "the RAM of " + name;
	pid_ = qemu_pid(name);
	qemu::JsonPtr args(json_object_new_object());
	json_object_object_add(args.get(), "command-line", json_object_new_string("gpa2hva 0"));
	std::string reply;
	try {
		qemu::JsonPtr r = QmpClient(dom).execute("human-monitor-command", args.get());
		reply = json_object_is_type(r.get(), json_type_string) ? json_object_get_string(r.get()) : "";
	} catch (const Error &e) {
		fail(CLOUDLET_E_UNSUPPORTED, "cannot locate " + what_ + ": " + e.what());
	}
	hva_ = parse_gpa2hva(reply, block);
	if (!hva_)
		fail(CLOUDLET_E_UNSUPPORTED, "cannot locate " + what_ + ": QEMU's gpa2hva said '" + reply + "'");
	// Both ends of the block must be readable: permission (ptrace access
	// to QEMU's process) and the right mapping are checked here, once.
	uint8_t probe[8];
	read(0, probe, sizeof probe);
	read(bytes_ - sizeof probe, probe, sizeof probe);
}

void GuestRam::read(uint64_t offset, uint8_t *buf, size_t n) const {
	if (offset > bytes_ || n > bytes_ - offset)
		fail(CLOUDLET_E_INTERNAL, "read beyond " + what_);
	while (n) {
		iovec local{buf, n}, remote{reinterpret_cast<void *>(hva_ + offset), n};
		ssize_t r = process_vm_readv(pid_, &local, 1, &remote, 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EPERM || errno == ESRCH))
			fail(CLOUDLET_E_UNSUPPORTED, errno_message("cannot read " + what_ + " from process " + std::to_string(pid_) +
			                                               " (reading it needs root or ptrace access)",
			                                           errno));
		if (r < 0)
			fail_errno("cannot read " + what_ + " from process " + std::to_string(pid_), errno);
		if (r == 0)
			fail(CLOUDLET_E_IO, "cannot read " + what_ + ": the process gave nothing");
		buf += r;
		offset += static_cast<uint64_t>(r);
		n -= static_cast<size_t>(r);
	}
}

} // namespace cloudlet::virt
