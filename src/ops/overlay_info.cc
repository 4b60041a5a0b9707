// overlay info: reads a whole overlay (verifying it) and counts what it holds.
#include "ops/overlay.h"

#include "byte_reader.h"
#include "format/overlay_file.h"
#include "util/error.h"
#include "util/unique_fd.h"

namespace cloudlet::ops {

namespace {

class Counter : public format::OverlaySink {
public:
	explicit Counter(OverlayInfo &i) : i_(i) {}
	void on_header(const format::OverlayHeader &h) override {
		i_.base_id = h.base_id;
		i_.codec = h.codec;
		i_.memory_chunks = h.total_pages;
		for (uint8_t s = 1; s <= h.disks.size(); s++)
			i_.disk_chunks += h.chunks_in(s);
	}
	void on_chunk(const chunk::ChunkRecord &r, const uint8_t *) override {
		i_.counts.n[r.space == chunk::kMemorySpace ? 0 : 1][static_cast<int>(r.kind)]++;
	}

private:
	OverlayInfo &i_;
};

} // namespace

OverlayInfo overlay_info(const std::string &path, Progress &progress) {
	OverlayInfo info;
	info.path = path;
	UniqueFd fd = open_for_reading(path);
	progress.report("read", 0, 0);
	qemu::FdSource src(fd.get(), path);
	qemu::Reader r(src, path);
	Counter counter(info);
	format::OverlayCounts n = format::read_overlay(r, counter);
	// What no record names is unchanged from the base.
	info.counts.n[0][0] = info.memory_chunks - info.counts.total(0);
	info.counts.n[1][0] = info.disk_chunks - info.counts.total(1);
	info.segments = n.segments;
	info.payload_bytes = n.payload_bytes;
	info.stored_bytes = n.stored_bytes;
	info.file_bytes = n.file_bytes;
	info.device_state_bytes = n.device_state_bytes;
	return info;
}

} // namespace cloudlet::ops
