// A compact hash table from a chunk's 64-bit fast hash to where such a chunk
// was seen (a base page, a base disk offset, an earlier overlay chunk).
// Open addressing, linear probing, first insertion wins; lookups return a
// candidate the caller must confirm by comparing bytes (dedup never trusts
// a fast hash alone). 16 bytes per slot, load factor <= 1/2.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace cloudlet::engine {

class ChunkTable {
public:
	explicit ChunkTable(uint64_t expected_entries = 0);
	// Adds key -> value unless key is present. Grows as needed.
	void insert(uint64_t key, uint64_t value);
	std::optional<uint64_t> find(uint64_t key) const;
	uint64_t size() const { return used_; }

private:
	void grow();
	struct Slot {
		uint64_t key, value; // value + 1; 0 marks an empty slot
	};
	std::vector<Slot> slots_;
	uint64_t mask_ = 0, used_ = 0;
};

} // namespace cloudlet::engine
