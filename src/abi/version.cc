// Version queries and cancel handles: small, dependency-free entry points.
#include "abi/guard.h"
#include "util/progress.h"

#include <cloudlet.h>

#define CLOUDLET_STR2(x) #x
#define CLOUDLET_STR(x) CLOUDLET_STR2(x)

extern "C" {

CLOUDLET_API cloudlet_status cloudlet_version(int *major, int *minor, int *patch) {
	if (major)
		*major = CLOUDLET_VERSION_MAJOR;
	if (minor)
		*minor = CLOUDLET_VERSION_MINOR;
	if (patch)
		*patch = CLOUDLET_VERSION_PATCH;
	cloudlet::abi::clear_error();
	return CLOUDLET_OK;
}

CLOUDLET_API const char *cloudlet_version_string(void) {
	return CLOUDLET_STR(CLOUDLET_VERSION_MAJOR) "." CLOUDLET_STR(CLOUDLET_VERSION_MINOR) "." CLOUDLET_STR(
	    CLOUDLET_VERSION_PATCH);
}

CLOUDLET_API cloudlet_status cloudlet_cancel_new(cloudlet_cancel **out) {
	return cloudlet::abi::guard(__func__, [&] {
		cloudlet::abi::require(out != nullptr, "out is NULL");
		*out = nullptr;
		*out = new cloudlet_cancel();
	});
}

CLOUDLET_API cloudlet_status cloudlet_cancel_trigger(cloudlet_cancel *cancel) {
	// No guard: must stay async-signal-safe (no allocation, no TLS writes).
	if (!cancel)
		return CLOUDLET_E_INVALID_ARG;
	cancel->triggered.store(1);
	return CLOUDLET_OK;
}

CLOUDLET_API int cloudlet_cancel_is_triggered(const cloudlet_cancel *cancel) {
	return cancel && cancel->triggered.load() ? 1 : 0;
}

CLOUDLET_API void cloudlet_cancel_free(cloudlet_cancel *cancel) {
	delete cancel;
}

} // extern "C"
