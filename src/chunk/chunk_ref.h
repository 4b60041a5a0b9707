// The packed references of our formats (docs/formats/overlay.md): an 8-bit
// selector above a 56-bit position, in one uint64.
//   chunk key       space << 56 | chunk    SELF / SHIFT_XOR references of an
//                                          overlay; dedup's, the handoff
//                                          queue's and the appliers' keys
//   base disk ref   disk << 56 | offset    BASE_DISK references (a byte
//                                          offset into base disk `disk`)
// Everything packs and unpacks them here.
#pragma once

#include <cstdint>

namespace cloudlet::chunk {

constexpr unsigned kRefSelectorShift = 56;
// The largest position a reference holds (a chunk number or a byte offset).
constexpr uint64_t kMaxRefPosition = (uint64_t(1) << kRefSelectorShift) - 1;
// BASE_DISK offsets are multiples of this (dedup's disk windows step by it).
constexpr uint64_t kBaseDiskAlignment = 512;

struct RefParts {
	uint8_t selector = 0;  // the space of a chunk key, the base disk of a base disk ref
	uint64_t position = 0; // the chunk of a chunk key, the byte offset of a base disk ref
};

// `position` must be <= kMaxRefPosition (every chunk number and disk offset is).
constexpr uint64_t pack_ref(uint8_t selector, uint64_t position) {
	return uint64_t(selector) << kRefSelectorShift | position;
}
constexpr RefParts unpack_ref(uint64_t ref) {
	return {static_cast<uint8_t>(ref >> kRefSelectorShift), ref & kMaxRefPosition};
}

} // namespace cloudlet::chunk
