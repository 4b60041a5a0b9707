// Chunk counts as the reports of overlay info and synthesis give them: by
// record kind (chunk::ChunkKind), with a delta against a stored chunk at a
// byte shift (ShiftXor) counted as a delta (DataXor) and `shifted` saying
// how many of the deltas were such. The kinds a report names are fixed (the
// C ABI's arrays cannot grow), the record kinds are not.
#pragma once

#include "chunk/chunk_record.h"

#include <cstdint>

namespace cloudlet::ops {

struct KindCounts {
	static constexpr int kDelta = static_cast<int>(chunk::ChunkKind::DataXor);
	static constexpr int kKinds = kDelta + 1; // 0 unchanged, then ChunkKind Zero .. DataXor
	uint64_t n[kKinds] = {};
	uint64_t shifted = 0; // of n[kDelta]
};

inline KindCounts kind_counts(const uint64_t (&by_kind)[chunk::kChunkKinds]) {
	static_assert(chunk::kChunkKinds == KindCounts::kKinds + 1, "ShiftXor is the one kind folded in");
	constexpr int kShift = static_cast<int>(chunk::ChunkKind::ShiftXor);
	KindCounts c;
	for (int k = 0; k < KindCounts::kKinds; k++)
		c.n[k] = by_kind[k];
	c.n[KindCounts::kDelta] += by_kind[kShift];
	c.shifted = by_kind[kShift];
	return c;
}

} // namespace cloudlet::ops
