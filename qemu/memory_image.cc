#include "memory_image.h"

#include "util/error.h"

#include <algorithm>
#include <cstring>

namespace cloudlet::qemu {

void MemoryImage::reset_pages(uint64_t total_pages) {
	state_.assign(total_pages, kUnset);
	slot_.assign(total_pages, 0);
	arena_.clear();
	free_slots_.clear();
}

void MemoryImage::set_page(uint64_t linear, const uint8_t *data, uint8_t fill) {
	if (linear >= state_.size())
		throw Error(CLOUDLET_E_INTERNAL, "page " + std::to_string(linear) + " outside the image");
	// A ZERO record with a non-zero fill byte (old QEMU) is a data page.
	uint8_t filled[kTargetPageSize];
	if (!data && fill != 0) {
		memset(filled, fill, sizeof filled);
		data = filled;
	}
	if (!data) {
		if (state_[linear] == kData)
			free_slots_.push_back(slot_[linear]);
		state_[linear] = kZero;
		return;
	}
	if (state_[linear] != kData) {
		if (!free_slots_.empty()) {
			slot_[linear] = free_slots_.back();
			free_slots_.pop_back();
		} else {
			if (arena_.size() / kTargetPageSize >= UINT32_MAX)
				throw Error(CLOUDLET_E_NOMEM, "memory image arena is full");
			slot_[linear] = static_cast<uint32_t>(arena_.size() / kTargetPageSize);
			arena_.resize(arena_.size() + kTargetPageSize);
		}
		state_[linear] = kData;
	}
	memcpy(arena_.data() + uint64_t(slot_[linear]) * kTargetPageSize, data, kTargetPageSize);
}

const uint8_t *MemoryImage::data(uint64_t linear) const {
	return state_[linear] == kData ? arena_.data() + uint64_t(slot_[linear]) * kTargetPageSize : nullptr;
}

uint64_t MemoryImage::count(PageState s) const {
	return static_cast<uint64_t>(std::count(state_.begin(), state_.end(), s));
}

void ImageBuilder::on_ram_blocks(const StreamInfo &info) {
	img_.reset_pages(info.total_pages);
}

void ImageBuilder::on_page(uint32_t, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t) {
	img_.set_page(linear, data, fill);
}

} // namespace cloudlet::qemu
