#include "stream_summary.h"

#include <algorithm>

namespace cloudlet::qemu {

void StreamSummary::on_ram_blocks(const StreamInfo &info) {
	total_pages_ = info.total_pages;
	leaves_.clear();
	leaves_.resize((info.total_pages + kLeafPages - 1) / kLeafPages); // 8 bytes per 16 MiB of RAM
}

void StreamSummary::on_page(uint32_t, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t) {
	page_records++;
	if (linear >= total_pages_)
		return; // the parser names only pages of its blocks
	auto &leaf = leaves_[linear / kLeafPages];
	if (!leaf)
		leaf = std::make_unique<uint8_t[]>(kLeafPages); // zeroed: unset
	leaf[linear % kLeafPages] = (data || fill) ? 2 : 1;
}

std::vector<StreamSummary::BlockCounts> StreamSummary::counts(const StreamInfo &info) const {
	std::vector<BlockCounts> out(info.blocks.size());
	for (size_t b = 0; b < info.blocks.size(); b++) {
		const RamBlock &blk = info.blocks[b];
		uint64_t end = std::min(blk.first_page + blk.pages(), total_pages_);
		for (uint64_t p = blk.first_page; p < end;) {
			uint64_t leaf_end = std::min(end, (p / kLeafPages + 1) * kLeafPages);
			const uint8_t *leaf = leaves_[p / kLeafPages].get();
			if (!leaf) { // nothing arrived for these pages
				out[b].unset += leaf_end - p;
				p = leaf_end;
				continue;
			}
			for (; p < leaf_end; p++) {
				uint8_t st = leaf[p % kLeafPages];
				if (st == 1)
					out[b].zero++;
				else if (st == 2)
					out[b].data++;
				else
					out[b].unset++;
			}
		}
	}
	return out;
}

} // namespace cloudlet::qemu
