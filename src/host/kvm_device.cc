#include "host/kvm_device.h"

#include "util/error.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

namespace cloudlet::host {

KvmDevice probe_kvm_device(const std::string &path) {
	KvmDevice out;
	int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		out.works = e == ENOENT ? CLOUDLET_NO : CLOUDLET_UNKNOWN;
		out.detail = errno_message("cannot open " + path, e);
		if (e == EACCES)
			out.detail += " (libvirt's QEMU may still have access)";
		return out;
	}
	int api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		out.works = CLOUDLET_NO;
		out.detail = path + ": unexpected KVM API version " + std::to_string(api);
		close(fd);
		return out;
	}
	int vm = ioctl(fd, KVM_CREATE_VM, 0);
	if (vm < 0) {
		out.works = CLOUDLET_NO;
		out.detail = errno_message(path + ": KVM_CREATE_VM failed", errno);
	} else {
		out.works = CLOUDLET_YES;
		out.detail = path + ": API version " + std::to_string(api) + ", KVM_CREATE_VM succeeds";
		close(vm);
	}
	close(fd);
	return out;
}

} // namespace cloudlet::host
