#include "host/kvm_device.h"

#include "util/error.h"
#include "util/unique_fd.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

namespace cloudlet::host {

KvmDevice probe_kvm_device(const std::string &path) {
	KvmDevice out;
	UniqueFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
	if (!fd) {
		int e = errno;
		out.works = e == ENOENT ? CLOUDLET_NO : CLOUDLET_UNKNOWN;
		out.detail = errno_message("cannot open " + path, e);
		if (e == EACCES)
			out.detail += " (libvirt's QEMU may still have access)";
		return out;
	}
	int api = ioctl(fd.get(), KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		out.works = CLOUDLET_NO;
		out.detail = path + ": unexpected KVM API version " + std::to_string(api);
		return out;
	}
	UniqueFd vm(ioctl(fd.get(), KVM_CREATE_VM, 0));
	if (!vm) {
		out.works = CLOUDLET_NO;
		out.detail = errno_message(path + ": KVM_CREATE_VM failed", errno);
	} else {
		out.works = CLOUDLET_YES;
		out.detail = path + ": API version " + std::to_string(api) + ", KVM_CREATE_VM succeeds";
	}
	return out;
}

} // namespace cloudlet::host
