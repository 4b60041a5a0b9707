// Fuzzes the libvirt save image header and the QEMU migration stream parser
// (with the summary sink and the device-state splitter behind it): any input
// gives a result or a clean CLOUDLET_E_CORRUPT / CLOUDLET_E_UNSUPPORTED.
#include "byte_reader.h"
#include "save_image.h"
#include "stream_parser.h"
#include "stream_summary.h"
#include "util/error.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	using namespace cloudlet::qemu;
	MemorySource src(data, size);
	Reader r(src, "fuzz input", 64 * 1024);
	ParseLimits limits;
	limits.max_ram_bytes = 1ull << 30; // keep the page table small under ASan
	limits.max_device_state = 1 << 20;
	try {
		if (r.peek() == 'L')
			read_save_header(r);
		StreamSummary sum;
		StreamInfo info = parse_stream(r, sum, limits);
		split_device_state(info.device_state);
		(void)sum.counts(info);
	} catch (const cloudlet::Error &e) {
		if (e.status() != CLOUDLET_E_CORRUPT && e.status() != CLOUDLET_E_UNSUPPORTED)
			__builtin_trap();
	}
	return 0;
}
