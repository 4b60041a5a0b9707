#include "engine/shift_match.h"

#include "engine/chunk_index.h"

#include <array>
#include <cstring>

namespace cloudlet::engine {

using chunk::kChunkSize;

namespace {

// Gear hash (h = h << 1 + G[byte]): after 64 bytes every earlier byte has
// been shifted out, so the value is a function of the window alone. The
// table is fixed (splitmix64 from a constant seed): anchors are the same
// in every run, which makes overlays reproducible.
const std::array<uint64_t, 256> &gear() {
	static const std::array<uint64_t, 256> g = [] {
		std::array<uint64_t, 256> t{};
		uint64_t x = 0x636c6f75646c6574ull; // "cloudlet"
		for (auto &v : t) {
			x += 0x9e3779b97f4a7c15ull;
			uint64_t z = x;
			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
			z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
			v = z ^ (z >> 31);
		}
		return t;
	}();
	return g;
}

// One position in 256: the top 8 bits zero (they depend on the whole window).
constexpr unsigned kAnchorShift = 56;

} // namespace

unsigned chunk_anchors(const uint8_t *p, Anchor *out) {
	const auto &g = gear();
	uint64_t h = 0;
	unsigned n = 0;
	for (unsigned i = 0; i < kAnchorWindow - 1; i++)
		h = (h << 1) + g[p[i]];
	uint64_t last = 0;
	for (unsigned i = kAnchorWindow - 1; i < kChunkSize && n < kMaxAnchors; i++) {
		h = (h << 1) + g[p[i]];
		// A run of equal windows (zeros, a repeated pattern) gives one key
		// over and over: one anchor for the run is enough.
		if ((h >> kAnchorShift) == 0 && h != last) {
			out[n++] = {static_cast<uint16_t>(i), h};
			last = h;
		}
	}
	return n;
}

void shifted_view(const uint8_t *ref, int shift, uint8_t *view) {
	if (shift >= 0) {
		size_t s = static_cast<size_t>(shift);
		memcpy(view, ref + s, kChunkSize - s);
		memset(view + kChunkSize - s, 0, s);
	} else {
		size_t s = static_cast<size_t>(-shift);
		memset(view, 0, s);
		memcpy(view + s, ref, kChunkSize - s);
	}
}

int xor_words(const uint8_t *data, const uint8_t *view, uint8_t *out) {
	int differ = 0;
	for (size_t i = 0; i < kChunkSize; i += 8) {
		uint64_t a, b;
		memcpy(&a, data + i, 8);
		memcpy(&b, view + i, 8);
		uint64_t x = a ^ b;
		memcpy(out + i, &x, 8);
		differ += x != 0;
	}
	return differ;
}

void ShiftIndex::add(uint64_t slot, const uint8_t *chunk) {
	Anchor a[kMaxAnchors];
	unsigned n = chunk_anchors(chunk, a);
	for (unsigned i = 0; i < n; i++)
		table_.insert(a[i].key, slot << 12 | a[i].offset);
}

std::optional<ShiftIndex::Match> ShiftIndex::find(const uint8_t *data, int max_words, unsigned tries,
                                                  const std::function<const uint8_t *(uint64_t)> &read,
                                                  uint8_t *xor_out) {
	if (table_.size() == 0)
		return std::nullopt;
	Anchor a[kMaxAnchors];
	unsigned n = chunk_anchors(data, a);
	std::optional<Match> best;
	uint64_t tried[kMaxAnchors];
	unsigned ntried = 0;
	uint8_t view[kChunkSize], x[kChunkSize];
	for (unsigned i = 0; i < n && ntried < tries; i++) {
		auto v = table_.find(a[i].key);
		if (!v)
			continue;
		uint64_t slot = *v >> 12;
		int shift = static_cast<int>(*v & 4095) - static_cast<int>(a[i].offset);
		if (shift == 0)
			continue; // an aligned copy would have been found as a whole chunk, or as a delta
		// Anchors of one copy agree on (slot, shift): try each pair once.
		uint64_t pair = slot << 13 | static_cast<uint64_t>(shift + 4096);
		bool seen = false;
		for (unsigned k = 0; k < ntried; k++)
			seen |= tried[k] == pair;
		if (seen)
			continue;
		tried[ntried++] = pair;
		shifted_view(read(slot), shift, view);
		int w = xor_words(data, view, x);
		if (w <= max_words && (!best || w < best->differing_words)) {
			best = Match{slot, shift, w};
			memcpy(xor_out, x, kChunkSize);
		}
	}
	return best;
}

} // namespace cloudlet::engine
