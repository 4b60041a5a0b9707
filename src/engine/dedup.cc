#include "engine/dedup.h"

#include "chunk/chunk_ref.h"
#include "util/error.h"
#include "util/fd_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cloudlet::engine {

using chunk::kChunkSize;

bool is_zero_chunk(const uint8_t *p) {
	// Word-wise OR: the compiler vectorises it; memory speed.
	uint64_t acc = 0;
	for (size_t i = 0; i < kChunkSize; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		acc |= v;
	}
	return acc == 0;
}

ChunkSpill::ChunkSpill(const std::string &dir) : dir_(dir) {
	fd_.reset(open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
	if (!fd_)
		fail_errno("cannot create a temporary file in " + dir, errno);
}

uint64_t ChunkSpill::append(const uint8_t *chunk) {
	off_t at = static_cast<off_t>(slots_ * kChunkSize);
	pwrite_all(fd_.get(), chunk, kChunkSize, static_cast<uint64_t>(at), "a temporary file in " + dir_);
	return slots_++;
}

void ChunkSpill::read(uint64_t slot, uint8_t *out) const {
	off_t at = static_cast<off_t>(slot * kChunkSize);
	pread_full(fd_.get(), out, kChunkSize, static_cast<uint64_t>(at), "a temporary file in " + dir_);
}

Deduper::Deduper(const DedupBase &base, const std::string &spill_dir)
    : base_(base), memory_table_(base.memory_index ? base.memory_index->count() : 0), spill_(spill_dir),
      scratch_(kChunkSize), xor_(kChunkSize), shift_xor_(kChunkSize) {
	const Hash128 zero = zero_chunk_hash();
	if (base.memory_index)
		for (uint64_t p = 0; p < base.memory_index->count(); p++) {
			Hash128 h = base.memory_index->at(p);
			if (h != zero)
				memory_table_.insert(h.lo, p);
		}
	// Aligned windows first: on equal content the aligned one wins.
	for (size_t d = 0; d < base.disks.size(); d++)
		if (const IndexFile *ix = base.disks[d].index)
			for (uint64_t i = 0; i < ix->count(); i++) {
				Hash128 h = ix->at(i);
				if (h != zero && (i + 1) * kChunkSize <= base.disks[d].bytes)
					disk_table_.insert(h.lo, chunk::pack_ref(static_cast<uint8_t>(d), i * kChunkSize));
			}
	for (size_t d = 0; d < base.disks.size(); d++)
		if (const IndexFile *ix = base.disks[d].sector_index)
			for (uint64_t i = 0; i < ix->count(); i++) {
				Hash128 h = ix->at(i);
				if (h != zero)
					disk_table_.insert(h.lo, chunk::pack_ref(static_cast<uint8_t>(d), i * kSectorStep));
			}
	// The indexes are in the tables now: their pages need not stay resident.
	if (base.memory_index)
		base.memory_index->drop_resident();
	for (const auto &d : base.disks)
		for (const IndexFile *ix : {d.index, d.sector_index})
			if (ix)
				ix->drop_resident();
}

bool Deduper::confirm_base_disk(uint64_t ref, const uint8_t *data) const {
	auto [d, off] = chunk::unpack_ref(ref);
	if (d >= base_.disks.size() || off + kChunkSize > base_.disks[d].bytes)
		return false;
	return memcmp(base_.disks[d].data + off, data, kChunkSize) == 0;
}

DedupDecision Deduper::classify(uint8_t space, uint64_t chunk, const uint8_t *data) {
	using chunk::ChunkKind;
	int sk = space == chunk::kMemorySpace ? 0 : 1;
	if (sk == 0 && ++memory_classified_ % 16384 == 0 && base_.drop_resident)
		base_.drop_resident();
	DedupDecision r;
	auto done = [&](int category) -> DedupDecision {
		counts_.n[sk][category]++;
		return r;
	};
	// 1. Unchanged at the same position (cheapest: one compare, no hash).
	const uint8_t *same = nullptr; // the base chunk at this position, if it has data
	if (space == chunk::kMemorySpace) {
		if (base_.memory && base_.same_memory_layout && chunk < base_.memory->stream_info().total_pages) {
			same = base_.memory->page(chunk);
			if (same ? memcmp(same, data, kChunkSize) == 0 : is_zero_chunk(data)) {
				r.unchanged = true;
				return done(0);
			}
		}
	} else if (size_t d = space - 1u; d < base_.disks.size()) {
		const auto &disk = base_.disks[d];
		uint64_t off = chunk * kChunkSize;
		if (off + kChunkSize <= disk.bytes) {
			same = disk.data + off;
			if (memcmp(same, data, kChunkSize) == 0) {
				r.unchanged = true;
				return done(0);
			}
		}
	}
	// 2. Zero.
	if (is_zero_chunk(data)) {
		r.kind = ChunkKind::Zero;
		return done(static_cast<int>(ChunkKind::Zero));
	}
	Hash128 h = chunk_hash(data);
	// 3. A base memory page.
	if (auto p = memory_table_.find(h.lo)) {
		const uint8_t *b = base_.memory ? base_.memory->page(*p) : nullptr;
		if (b && memcmp(b, data, kChunkSize) == 0) {
			r.kind = ChunkKind::BaseMemory;
			r.ref = *p;
			return done(static_cast<int>(ChunkKind::BaseMemory));
		}
	}
	// 4. A base disk window.
	if (auto ref = disk_table_.find(h.lo); ref && confirm_base_disk(*ref, data)) {
		r.kind = ChunkKind::BaseDisk;
		r.ref = *ref;
		return done(static_cast<int>(ChunkKind::BaseDisk));
	}
	// 5. An earlier chunk of this overlay.
	if (auto slot = self_table_.find(h.lo)) {
		spill_.read(*slot, scratch_.data());
		if (memcmp(scratch_.data(), data, kChunkSize) == 0) {
			r.kind = ChunkKind::Self;
			r.ref = ordinal_self_refs_ ? *slot : self_refs_[*slot];
			return done(static_cast<int>(ChunkKind::Self));
		}
	}
	// 6. Stored: remembered for later chunks (by content, not as stored),
	// as the cheapest of plain data, a delta against the base chunk at the
	// same position, and a delta against a stored chunk at a byte shift.
	int best_words = kXorMaxDifferentWords + 1;
	r.kind = ChunkKind::Data;
	r.payload = data;
	if (same) {
		int differ = xor_words(data, same, xor_.data());
		if (differ <= kXorMaxDifferentWords) {
			r.kind = ChunkKind::DataXor;
			r.payload = xor_.data();
			best_words = differ;
		}
	}
	if (best_words > 0) {
		auto read = [&](uint64_t s) -> const uint8_t * {
			spill_.read(s, scratch_.data());
			return scratch_.data();
		};
		if (auto m = shifts_.find(data, std::min(best_words - 1, kXorMaxDifferentWords), kShiftTries, read,
		                          shift_xor_.data())) {
			r.kind = ChunkKind::ShiftXor;
			r.ref = ordinal_self_refs_ ? m->slot : self_refs_[m->slot];
			r.shift = static_cast<int16_t>(m->shift);
			r.payload = shift_xor_.data();
		}
	}
	uint64_t slot = spill_.append(data);
	self_refs_.push_back(chunk::pack_ref(space, chunk));
	self_table_.insert(h.lo, slot);
	shifts_.add(slot, data);
	return done(static_cast<int>(r.kind));
}

} // namespace cloudlet::engine
