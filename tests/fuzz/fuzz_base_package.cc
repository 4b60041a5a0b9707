// Fuzzes the base package reader (and the manifest parser behind it): any
// input gives a result or a clean CLOUDLET_E_CORRUPT / _UNSUPPORTED, and
// never more than what the manifest in the input declares on disk.
#include "byte_reader.h"
#include "format/base_package.h"
#include "store/base_store.h"
#include "store/manifest.h"
#include "util/error.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	using namespace cloudlet;
	static std::string root = [] {
		char t[] = "/tmp/cloudlet-fuzz-XXXXXX";
		return std::string(mkdtemp(t));
	}();
	std::string dir = root + "/w";
	store::remove_tree(dir);
	mkdir(dir.c_str(), 0700);
	try {
		store::Manifest::parse(std::string(reinterpret_cast<const char *>(data), size), "fuzz manifest");
	} catch (const Error &e) {
		if (e.status() != CLOUDLET_E_CORRUPT && e.status() != CLOUDLET_E_UNSUPPORTED)
			__builtin_trap();
	}
	qemu::MemorySource src(data, size);
	qemu::Reader r(src, "fuzz package", 2 << 20);
	Progress p;
	try {
		format::read_base_package(r, dir, p);
	} catch (const Error &e) {
		// Files the input names may fail to be created (I/O); anything else
		// must be a clean refusal.
		if (e.status() != CLOUDLET_E_CORRUPT && e.status() != CLOUDLET_E_UNSUPPORTED && e.status() != CLOUDLET_E_IO)
			__builtin_trap();
	}
	store::remove_tree(dir);
	return 0;
}
