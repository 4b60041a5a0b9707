#include "engine/handoff_items.h"

#include "chunk/record_check.h"
#include "util/error.h"
#include "util/le_bytes.h"

#include <cstring>

namespace cloudlet::engine {

namespace {

using chunk::kChunkSize;

constexpr size_t kRecord = 32, kBatchHeader = 12;
constexpr uint32_t kMaxItems = 65536;
constexpr uint32_t kMaxRaw = kMaxItems * kRecord + (16u << 20);

using le::get32;
using le::get64;
using le::put32;
using le::put64;

chunk::ChunkRecord item_record(const uint8_t *p) {
	return {p[0], static_cast<chunk::ChunkKind>(p[1]), get64(p + 16), get64(p + 24), chunk::get_shift(p)};
}

} // namespace

void ItemBatch::add(const chunk::ChunkRecord &r, uint64_t version, const uint8_t *payload) {
	size_t at = records_.size();
	records_.resize(at + kRecord, 0);
	uint8_t *p = records_.data() + at;
	p[0] = r.space;
	p[1] = static_cast<uint8_t>(r.kind);
	chunk::put_shift(p, r.shift);
	put64(p + 8, version);
	put64(p + 16, r.chunk);
	put64(p + 24, r.ref);
	if (chunk::stores_payload(r.kind)) {
		size_t pat = payload_.size();
		payload_.resize(pat + kChunkSize);
		memcpy(payload_.data() + pat, payload, kChunkSize);
	}
}

std::vector<uint8_t> ItemBatch::encode(chunk::Codec codec, int level) {
	std::vector<uint8_t> raw(records_.size() + payload_.size());
	memcpy(raw.data(), records_.data(), records_.size());
	if (!payload_.empty())
		memcpy(raw.data() + records_.size(), payload_.data(), payload_.size());
	std::vector<uint8_t> stored;
	if (codec != chunk::Codec::None) {
		chunk::compress_block(codec, level, raw.data(), raw.size(), stored);
		if (stored.size() >= raw.size())
			codec = chunk::Codec::None;
	}
	const std::vector<uint8_t> &body = codec == chunk::Codec::None ? raw : stored;
	std::vector<uint8_t> out(kBatchHeader + body.size(), 0);
	out[0] = static_cast<uint8_t>(codec);
	put32(out.data() + 4, static_cast<uint32_t>(records_.size() / kRecord));
	put32(out.data() + 8, static_cast<uint32_t>(raw.size()));
	memcpy(out.data() + kBatchHeader, body.data(), body.size());
	records_.clear();
	payload_.clear();
	return out;
}

uint64_t decode_item_batch(const std::vector<uint8_t> &frame, uint8_t spaces,
                           const std::function<void(const chunk::ChunkRecord &, uint64_t, const uint8_t *)> &apply) {
	auto bad = [](const std::string &why) { fail(CLOUDLET_E_CORRUPT, "handoff ITEMS batch: " + why); };
	if (frame.size() < kBatchHeader)
		bad("shorter than its header");
	uint8_t codec = frame[0];
	uint32_t n = get32(frame.data() + 4), rawlen = get32(frame.data() + 8);
	if (codec > 2 || frame[1] || frame[2] || frame[3])
		bad("unknown codec or reserved bytes set");
	if (n == 0 || n > kMaxItems || rawlen > kMaxRaw || rawlen < uint64_t(n) * kRecord ||
	    (rawlen - n * kRecord) % kChunkSize)
		bad(std::to_string(n) + " items in " + std::to_string(rawlen) + " bytes is out of range");
	chunk::check_stored_block(static_cast<chunk::Codec>(codec), frame.data() + kBatchHeader, frame.size() - kBatchHeader,
	                          rawlen, "handoff ITEMS batch"); // before rawlen is allocated
	std::vector<uint8_t> raw(rawlen);
	chunk::decompress_block(static_cast<chunk::Codec>(codec), frame.data() + kBatchHeader, frame.size() - kBatchHeader,
	                        raw.data(), rawlen, "handoff ITEMS batch");
	// What the batch alone shows; chunk numbers and references against the
	// session and its base are the applier's to check.
	chunk::RecordBounds rules;
	rules.disks = spaces;
	size_t slots = 0;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *p = raw.data() + size_t(i) * kRecord;
		if (!chunk::reserved_bytes_clear(p))
			bad("item " + std::to_string(i) + ": reserved bytes set");
		chunk::ChunkRecord r = item_record(p);
		if (std::string why = chunk::record_problem(r, rules); !why.empty())
			bad("item " + std::to_string(i) + ": " + why);
		slots += chunk::stores_payload(r.kind);
	}
	if (slots * kChunkSize != rawlen - n * kRecord)
		bad(std::to_string(slots) + " stored items for " + std::to_string(rawlen - n * kRecord) + " payload bytes");
	const uint8_t *payload = raw.data() + n * kRecord;
	size_t slot = 0;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *p = raw.data() + size_t(i) * kRecord;
		chunk::ChunkRecord r = item_record(p);
		apply(r, get64(p + 8), chunk::stores_payload(r.kind) ? payload + kChunkSize * slot++ : nullptr);
	}
	return rawlen;
}

} // namespace cloudlet::engine
