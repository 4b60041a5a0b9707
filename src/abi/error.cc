// Status names and the per-thread detailed error message.
#include "abi/guard.h"

#include <cloudlet.h>

#include <string>

namespace cloudlet::abi {

namespace {
thread_local std::string t_message;
thread_local cloudlet_status t_status = CLOUDLET_OK;
} // namespace

void set_error(cloudlet_status status, const char *function, const char *message) noexcept {
	t_status = status;
	try {
		t_message = std::string(function) + ": " + message;
	} catch (...) {
		// Out of memory while reporting: keep what we can without allocating.
		t_message.clear();
	}
}

void clear_error() noexcept {
	t_status = CLOUDLET_OK;
	t_message.clear();
}

} // namespace cloudlet::abi

extern "C" {

CLOUDLET_API const char *cloudlet_strerror(cloudlet_status status) {
	switch (status) {
	case CLOUDLET_OK: return "success";
	case CLOUDLET_E_INVALID_ARG: return "invalid argument";
	case CLOUDLET_E_NOMEM: return "out of memory";
	case CLOUDLET_E_VERSION: return "unsupported struct version";
	case CLOUDLET_E_IO: return "input/output error";
	case CLOUDLET_E_LIBVIRT: return "libvirt error";
	case CLOUDLET_E_NOT_FOUND: return "not found";
	case CLOUDLET_E_EXISTS: return "already exists";
	case CLOUDLET_E_CORRUPT: return "corrupt or malformed data";
	case CLOUDLET_E_UNSUPPORTED: return "unsupported";
	case CLOUDLET_E_HOST: return "host cannot do this";
	case CLOUDLET_E_CANCELLED: return "cancelled";
	case CLOUDLET_E_TIMEOUT: return "timed out";
	case CLOUDLET_E_PERMISSION: return "permission denied";
	case CLOUDLET_E_BUSY: return "busy with another operation";
	case CLOUDLET_E_INTERNAL: return "internal error";
	}
	return "unknown status";
}

CLOUDLET_API const char *cloudlet_last_error_message(void) {
	return cloudlet::abi::t_message.c_str();
}

CLOUDLET_API cloudlet_status cloudlet_last_error_status(void) {
	return cloudlet::abi::t_status;
}

} // extern "C"
