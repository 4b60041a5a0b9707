// ITEMS batches of the handoff protocol (docs/protocols/handoff.md): 32-byte
// records (space, kind, version, chunk, reference) followed by the stored
// chunks, compressed together. The sender builds them; the receiver checks
// every record before handing any on.
#pragma once

#include "chunk/block_codec.h"
#include "chunk/chunk_record.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace cloudlet::engine {

class ItemBatch {
public:
	void add(const chunk::ChunkRecord &r, uint64_t version, const uint8_t *payload);
	size_t items() const { return records_.size() / 32; }
	size_t raw_bytes() const { return records_.size() + payload_.size(); }
	bool empty() const { return records_.empty(); }
	// The stored chunks so far (what compression mostly works on).
	const std::vector<uint8_t> &payload() const { return payload_; }
	// The frame payload; clears the batch.
	std::vector<uint8_t> encode(chunk::Codec codec, int level);

private:
	std::vector<uint8_t> records_, payload_;
};

// Decodes and checks one batch; calls `apply` for each item in order
// (`data`: the stored 4096 bytes, or null). Throws CLOUDLET_E_CORRUPT.
// Returns the bytes before compression.
uint64_t decode_item_batch(
    const std::vector<uint8_t> &frame, uint8_t spaces,
    const std::function<void(const chunk::ChunkRecord &, uint64_t version, const uint8_t *data)> &apply);

} // namespace cloudlet::engine
