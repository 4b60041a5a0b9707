// Fuzzes the memory image reader (docs/formats/memory-image.md): the header,
// RAM block table, configuration, device state and page index are validated
// against the file before use, so any input gives an image whose every page
// lookup stays inside the file, or a clean CLOUDLET_E_CORRUPT /
// _UNSUPPORTED. The input becomes a memfd, as the reader maps a file.
#include "image_file.h"
#include "util/error.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	int fd = memfd_create("fuzz-memory-image", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != static_cast<ssize_t>(size)) {
		close(fd);
		return 0;
	}
	try {
		cloudlet::qemu::ImageFile img("/proc/self/fd/" + std::to_string(fd));
		const auto &info = img.stream_info();
		uint64_t sum = img.data_pages();
		// Every page lookup, up to a bound: reads must stay inside the map.
		uint64_t pages = info.total_pages < (1u << 16) ? info.total_pages : (1u << 16);
		for (uint64_t p = 0; p < pages; p++)
			if (const uint8_t *d = img.page(p))
				sum += d[0] + d[4095];
		(void)sum;
	} catch (const cloudlet::Error &e) {
		if (e.status() != CLOUDLET_E_CORRUPT && e.status() != CLOUDLET_E_UNSUPPORTED && e.status() != CLOUDLET_E_IO)
			__builtin_trap();
	}
	close(fd);
	return 0;
}
