#include "stream_summary.h"

namespace cloudlet::qemu {

void StreamSummary::on_ram_blocks(const StreamInfo &info) {
	state_.assign(info.total_pages, 0);
}

void StreamSummary::on_page(uint32_t, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t) {
	state_[linear] = (data || fill) ? 2 : 1;
	page_records++;
}

std::vector<StreamSummary::BlockCounts> StreamSummary::counts(const StreamInfo &info) const {
	std::vector<BlockCounts> out(info.blocks.size());
	for (size_t b = 0; b < info.blocks.size(); b++) {
		const RamBlock &blk = info.blocks[b];
		for (uint64_t p = blk.first_page; p < blk.first_page + blk.pages() && p < state_.size(); p++) {
			if (state_[p] == 1)
				out[b].zero++;
			else if (state_[p] == 2)
				out[b].data++;
			else
				out[b].unset++;
		}
	}
	return out;
}

} // namespace cloudlet::qemu
