// A sink that keeps only what describes a stream: the latest state of every
// page (zero or data; one byte per page) and counts. The page states are
// kept in leaves of 4096 pages made when a page of theirs arrives, so a
// stream that declares far more RAM than it sends (`snapshot info` of a
// hostile file) costs what it sends, not what it declares.
// What `snapshot info` and the parser benchmark use: no page is copied.
#pragma once

#include "stream_parser.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace cloudlet::qemu {

class StreamSummary : public StreamSink {
public:
	void on_ram_blocks(const StreamInfo &info) override;
	void on_page(uint32_t block, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t section) override;

	struct BlockCounts {
		uint64_t zero = 0, data = 0, unset = 0;
	};
	// Counts per block (latest version of each page), after parsing.
	std::vector<BlockCounts> counts(const StreamInfo &info) const;
	uint64_t page_records = 0; // every page record, repeats included

private:
	static constexpr uint64_t kLeafPages = 4096;
	uint64_t total_pages_ = 0;
	std::vector<std::unique_ptr<uint8_t[]>> leaves_; // per page: 0 unset, 1 zero, 2 data
};

} // namespace cloudlet::qemu
