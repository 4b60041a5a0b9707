// The one set of rules a chunk record obeys (docs/formats/overlay.md; the
// handoff's items follow the same rules, docs/protocols/handoff.md), checked
// wherever records come from outside: the overlay reader, the handoff ITEMS
// decoder and the handoff applier. Each knows different limits; a limit it
// does not know is not checked, and it checks what only it can know (an
// overlay names each chunk once) itself.
#pragma once

#include "chunk/chunk_record.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cloudlet::chunk {

struct RecordBounds {
	uint8_t disks = 0; // spaces 1..disks exist besides the memory (and base disks 0..disks-1)
	// Chunks in each space, memory first; empty: chunk numbers are not checked.
	std::vector<uint64_t> space_chunks;
	// The base the references point into; unknown: only what the record
	// alone shows is checked.
	bool base_known = false;
	uint64_t base_memory_pages = 0;
	std::vector<uint64_t> base_disk_bytes;
	// Whether a SELF or SHIFT_XOR reference names a chunk stored before this
	// record (an overlay: a chunk key, chunk/chunk_ref.h; a handoff: the
	// ordinal of a stored item). Empty: not checked.
	std::function<bool(uint64_t ref)> stored;
};

// What is wrong with `r` ("unknown kind 9", "chunk 12 is beyond the end of
// space 1", ...), or an empty string if nothing is. The caller says where
// the record is and fails with CLOUDLET_E_CORRUPT.
std::string record_problem(const ChunkRecord &r, const RecordBounds &b);

} // namespace cloudlet::chunk
