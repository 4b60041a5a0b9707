// The memory image model: RAM blocks with a page table (zero, or where the
// page's data is), the opaque device state, and what is needed to re-emit a
// stream. Pages are numbered linearly across blocks in stream order
// ("linear page number"): block k's page i is blocks[k].first_page + i.
//
// This in-memory form keeps the data pages in one arena. The mmap-able
// on-disk form (docs/formats/memory-image.md) follows the same model.
#pragma once

#include "stream_parser.h"

#include <cstdint>
#include <vector>

namespace cloudlet::qemu {

class MemoryImage {
public:
	enum PageState : uint8_t { kUnset = 0, kZero = 1, kData = 2 };

	StreamInfo info; // blocks, configuration, RAM section ids, device state

	void reset_pages(uint64_t total_pages);
	// A new version of a page: data (4096 bytes) or null for all-`fill`.
	void set_page(uint64_t linear, const uint8_t *data, uint8_t fill);
	PageState state(uint64_t linear) const { return state_[linear]; }
	// The page's bytes for kData, else null.
	const uint8_t *data(uint64_t linear) const;
	uint64_t total_pages() const { return state_.size(); }
	uint64_t count(PageState s) const;

private:
	std::vector<PageState> state_;
	std::vector<uint32_t> slot_;       // index into arena_ for kData pages
	std::vector<uint8_t> arena_;
	std::vector<uint32_t> free_slots_;
};

// A sink that builds a MemoryImage while the stream is parsed.
class ImageBuilder : public StreamSink {
public:
	explicit ImageBuilder(MemoryImage &img) : img_(img) {}
	void on_ram_blocks(const StreamInfo &info) override;
	void on_page(uint32_t block, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t section) override;

private:
	MemoryImage &img_;
};

} // namespace cloudlet::qemu
