// Finding a chunk's content at a byte shift inside a chunk stored earlier.
//
// Real guests hold copies of new data at in-page offsets: a file read
// through a program leaves it in the page cache (page-aligned) and in freed
// heap or socket buffers 48 or 212 bytes into their pages (measured on a
// Debian guest: docs/overlays.md). Whole-page dedup stores those copies
// again. Content-defined anchors find them: a rolling hash over 64 bytes
// marks about one position in 256 by content alone, so the same bytes get
// the same anchors wherever they sit; an anchor of a new chunk that was
// also seen in a stored chunk proposes a shift, and the bytes decide.
#pragma once

#include "engine/chunk_table.h"

#include <cstdint>
#include <functional>
#include <optional>

namespace cloudlet::engine {

// The rolling window: an anchor at offset p depends on bytes [p-63, p].
constexpr unsigned kAnchorWindow = 64;
// At most this many anchors of a chunk are indexed or looked up.
constexpr unsigned kMaxAnchors = 24;

struct Anchor {
	uint16_t offset; // position of the window's last byte in the chunk
	uint64_t key;    // the rolling hash there
};

// The anchors of a 4 KiB chunk, in position order; returns how many
// (<= kMaxAnchors). Windows lie wholly inside the chunk.
unsigned chunk_anchors(const uint8_t *chunk, Anchor *out);

// view = ref shifted: view[i] = ref[i + shift] where 0 <= i + shift < 4096,
// else 0. |shift| < 4096.
void shifted_view(const uint8_t *ref, int shift, uint8_t *view);

// data XOR view into `out`; returns the number of 8-byte words that differ.
int xor_words(const uint8_t *data, const uint8_t *view, uint8_t *out);

class ShiftIndex {
public:
	struct Match {
		uint64_t slot = 0; // the stored chunk's slot (caller's numbering)
		int shift = 0;     // data[i] == ref[i + shift] where both exist
		int differing_words = 0;
	};
	// Indexes the anchors of a stored chunk.
	void add(uint64_t slot, const uint8_t *chunk);
	// The candidate with the fewest differing words (<= max_words), trying
	// at most `tries` distinct (slot, shift) pairs; `read(slot)` returns the
	// stored chunk's 4096 bytes (valid until the next call). On a match,
	// `xor_out` holds data XOR the shifted reference.
	std::optional<Match> find(const uint8_t *data, int max_words, unsigned tries,
	                          const std::function<const uint8_t *(uint64_t)> &read, uint8_t *xor_out);
	uint64_t anchors() const { return table_.size(); }

private:
	ChunkTable table_; // anchor key -> slot << 12 | offset
};

} // namespace cloudlet::engine
