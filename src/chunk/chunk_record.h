// The chunk vocabulary every layer above shares (docs/formats/overlay.md,
// docs/protocols/handoff.md): the chunk size, the spaces, the kinds of
// record and the record itself. An overlay segment and a handoff ITEMS batch
// both encode a record starting with the same 8-byte head: space, kind, the
// shift (little-endian int16, ShiftXor only) and 4 reserved zero bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cloudlet::chunk {

// The unit of dedup, overlays and handoff: a guest page in memory, 4 KiB of a
// disk (its last chunk zero-padded).
constexpr size_t kChunkSize = 4096;

// Space 0 is the memory; disk d (in the overlay's or the session's order) is space 1 + d.
constexpr uint8_t kMemorySpace = 0;

// DataXor: the payload slot holds the chunk XOR the base chunk at the same
// position (pages that changed a little compress to almost nothing).
// ShiftXor: the payload slot holds the chunk XOR an earlier stored chunk
// (named like SELF's reference) moved by `shift` bytes: copies of data at
// in-page offsets (engine/shift_match.h).
enum class ChunkKind : uint8_t { Zero = 1, BaseMemory = 2, BaseDisk = 3, Self = 4, Data = 5, DataXor = 6, ShiftXor = 7 };
constexpr int kChunkKinds = 8; // 0 (unchanged) .. 7
inline bool stores_payload(ChunkKind k) {
	return k == ChunkKind::Data || k == ChunkKind::DataXor || k == ChunkKind::ShiftXor;
}
// The kinds whose reference names an earlier stored chunk.
inline bool refers_to_stored(ChunkKind k) { return k == ChunkKind::Self || k == ChunkKind::ShiftXor; }

struct ChunkRecord {
	uint8_t space = 0;
	ChunkKind kind = ChunkKind::Zero;
	uint64_t chunk = 0;
	uint64_t ref = 0;
	int16_t shift = 0; // ShiftXor only: content[i] ^= ref_content[i + shift] where it exists
};

// A ShiftXor shift is in (-kChunkSize, kChunkSize) and not 0; records carry
// it as a little-endian int16 at byte 2 (zero for every other kind).
inline bool valid_shift(int s) {
	return s != 0 && s > -static_cast<int>(kChunkSize) && s < static_cast<int>(kChunkSize);
}
void put_shift(uint8_t *record, int16_t shift);
int16_t get_shift(const uint8_t *record);
// Whether the reserved bytes of an encoded record's head are zero: bytes 4..7
// always, bytes 2..3 (the shift) unless byte 1 says ShiftXor.
bool reserved_bytes_clear(const uint8_t *record);

} // namespace cloudlet::chunk
