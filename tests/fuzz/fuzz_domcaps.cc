// Fuzzes the domain-capabilities reader (libvirt's XML, parsed with libxml2):
// any input must give a result or a clean CLOUDLET_E_CORRUPT, never a crash.
#include "util/error.h"
#include "virt/host_caps.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	try {
		cloudlet::virt::parse_domain_caps(std::string(reinterpret_cast<const char *>(data), size), "qemu",
		                                  "core2duo");
	} catch (const cloudlet::Error &e) {
		if (e.status() != CLOUDLET_E_CORRUPT)
			__builtin_trap();
	}
	return 0;
}
