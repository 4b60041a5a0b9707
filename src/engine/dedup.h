// Dedup of a launch VM's 4 KiB chunks against its base and against itself,
// in cost order (docs/formats/overlay.md kinds): unchanged at the same
// position, zero, a base memory page, a base disk window (4 KiB-aligned
// first, then 512-byte steps), an earlier chunk of this overlay, else data.
// Candidates come from XXH3 tables; every candidate is confirmed by
// comparing bytes before it is used.
#pragma once

#include "chunk/chunk_record.h"
#include "engine/chunk_index.h"
#include "engine/chunk_table.h"
#include "engine/shift_match.h"
#include "image_file.h"
#include "util/unique_fd.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cloudlet::engine {

// The base as dedup sees it. Pointers are borrowed and must outlive the Deduper.
struct DedupBase {
	const qemu::PageProvider *memory = nullptr; // base memory pages
	const IndexFile *memory_index = nullptr;
	struct Disk {
		const uint8_t *data = nullptr; // the raw disk, mapped
		uint64_t bytes = 0;
		const IndexFile *index = nullptr;         // 4 KiB chunks
		const IndexFile *sector_index = nullptr;  // 512-byte steps (may be null)
	};
	std::vector<Disk> disks;
	bool same_memory_layout = true; // launch pages line up with base pages
	// Called every 64 MiB of memory classified: lets go of the base memory's
	// mapped pages read so far, so the RSS stays bounded by the change and
	// not by the base's memory (may be empty).
	std::function<void()> drop_resident;
};

// Chunks kept for confirming self-references: an unlinked temp file, so
// memory does not grow with the overlay (reads come from the page cache).
class ChunkSpill {
public:
	explicit ChunkSpill(const std::string &dir);
	uint64_t append(const uint8_t *chunk); // returns its slot
	void read(uint64_t slot, uint8_t *out) const;

private:
	UniqueFd fd_;
	std::string dir_;
	uint64_t slots_ = 0;
};

struct DedupDecision {
	bool unchanged = false;                 // no record needed
	chunk::ChunkKind kind = chunk::ChunkKind::Data;
	uint64_t ref = 0;
	int16_t shift = 0;                      // ShiftXor
	const uint8_t *payload = nullptr;       // stored kinds: the bytes to store (valid until the next call)
	chunk::ChunkRecord record(uint8_t space, uint64_t chunk) const { return {space, kind, chunk, ref, shift}; }
};

struct DedupCounts {
	// [space kind: 0 memory, 1 disk][category: 0 unchanged, 1..6 ChunkKind]
	uint64_t n[2][chunk::kChunkKinds] = {};
	uint64_t total(int space) const {
		uint64_t t = 0;
		for (uint64_t v : n[space])
			t += v;
		return t;
	}
};

class Deduper {
public:
	Deduper(const DedupBase &base, const std::string &spill_dir);
	// Classifies one chunk (4096 bytes; a disk's last chunk zero-padded).
	// Not thread-safe: one thread feeds a Deduper.
	DedupDecision classify(uint8_t space, uint64_t chunk, const uint8_t *data);
	const DedupCounts &counts() const { return counts_; }
	// Handoff: SELF references name the n-th stored chunk (Data or
	// DataXor) of the session instead of a (space, chunk) that may have
	// been re-sent with other content since (docs/protocols/handoff.md).
	void use_ordinal_self_refs() { ordinal_self_refs_ = true; }

private:
	bool confirm_base_disk(uint64_t ref, const uint8_t *data) const;
	const DedupBase &base_;
	ChunkTable memory_table_, disk_table_, self_table_;
	ChunkSpill spill_;
	std::vector<uint64_t> self_refs_; // spill slot -> its chunk key (chunk/chunk_ref.h)
	DedupCounts counts_;
	bool ordinal_self_refs_ = false;
	ShiftIndex shifts_; // anchors of stored chunks, by spill slot
	std::vector<uint8_t> scratch_, xor_, shift_xor_;
	uint64_t memory_classified_ = 0;
};

// Chunks that still share more than half their 8-byte words with the base
// chunk at the same position are stored as XOR against it (measured:
// docs/overlays.md).
constexpr int kXorMaxDifferentWords = 256;
// Distinct (stored chunk, shift) candidates tried per chunk (each costs one
// read of the stored chunk and one XOR pass).
constexpr unsigned kShiftTries = 4;

bool is_zero_chunk(const uint8_t *data);

} // namespace cloudlet::engine
