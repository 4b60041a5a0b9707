#include "engine/chunk_table.h"

namespace cloudlet::engine {

namespace {
uint64_t mix(uint64_t k) { // the fast hash is already uniform; this only guards structured keys
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k;
}
} // namespace

ChunkTable::ChunkTable(uint64_t expected) {
	uint64_t cap = 1024;
	while (cap < expected * 2)
		cap <<= 1;
	slots_.assign(cap, Slot{0, 0});
	mask_ = cap - 1;
}

void ChunkTable::insert(uint64_t key, uint64_t value) {
	if ((used_ + 1) * 2 > slots_.size())
		grow();
	for (uint64_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
		Slot &s = slots_[i];
		if (s.value == 0) {
			s = {key, value + 1};
			used_++;
			return;
		}
		if (s.key == key)
			return;
	}
}

std::optional<uint64_t> ChunkTable::find(uint64_t key) const {
	for (uint64_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
		const Slot &s = slots_[i];
		if (s.value == 0)
			return std::nullopt;
		if (s.key == key)
			return s.value - 1;
	}
}

void ChunkTable::grow() {
	std::vector<Slot> old;
	old.swap(slots_);
	slots_.assign(old.size() * 2, Slot{0, 0});
	mask_ = slots_.size() - 1;
	used_ = 0;
	for (const Slot &s : old)
		if (s.value)
			insert(s.key, s.value - 1);
}

} // namespace cloudlet::engine
