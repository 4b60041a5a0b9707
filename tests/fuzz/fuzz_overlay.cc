// Fuzzes the overlay reader (header JSON, segments, codecs, records,
// footer): any input gives a result or a clean CLOUDLET_E_CORRUPT /
// _UNSUPPORTED, with bounded memory.
#include "byte_reader.h"
#include "format/overlay_file.h"
#include "util/error.h"

#include <cstddef>
#include <cstdint>

namespace {
struct Sink : cloudlet::format::OverlaySink {
	uint64_t sum = 0;
	void on_chunk(const cloudlet::chunk::ChunkRecord &r, const uint8_t *d) override { sum += r.chunk + (d ? d[0] : 0); }
};
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	cloudlet::qemu::MemorySource src(data, size);
	cloudlet::qemu::Reader r(src, "fuzz overlay", 1 << 20);
	Sink sink;
	cloudlet::format::BaseBounds bounds{true, 1 << 16, {1 << 26}};
	try {
		cloudlet::format::read_overlay(r, sink, bounds);
	} catch (const cloudlet::Error &e) {
		if (e.status() != CLOUDLET_E_CORRUPT && e.status() != CLOUDLET_E_UNSUPPORTED)
			__builtin_trap();
	}
	return 0;
}
