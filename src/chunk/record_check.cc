#include "chunk/record_check.h"

#include "chunk/chunk_ref.h"

namespace cloudlet::chunk {

std::string record_problem(const ChunkRecord &r, const RecordBounds &b) {
	auto n = [](uint64_t v) { return std::to_string(v); };
	uint8_t kind = static_cast<uint8_t>(r.kind);
	if (r.space > b.disks)
		return "space " + n(r.space) + " does not exist";
	if (kind < 1 || kind >= kChunkKinds)
		return "unknown kind " + n(kind);
	if (!b.space_chunks.empty() && (r.space >= b.space_chunks.size() || r.chunk >= b.space_chunks[r.space]))
		return "chunk " + n(r.chunk) + " is beyond the end of space " + n(r.space);
	if (r.kind != ChunkKind::ShiftXor && r.shift)
		return "shift " + std::to_string(r.shift) + " on a record that takes none";
	switch (r.kind) {
	case ChunkKind::Zero:
		if (r.ref)
			return "zero record with a reference";
		break;
	case ChunkKind::BaseMemory:
		if (b.base_known && r.ref >= b.base_memory_pages)
			return "base memory page " + n(r.ref) + " does not exist";
		break;
	case ChunkKind::BaseDisk: {
		auto [d, off] = unpack_ref(r.ref);
		if (off % kBaseDiskAlignment || d >= b.disks ||
		    (b.base_known && (d >= b.base_disk_bytes.size() || off + kChunkSize > b.base_disk_bytes[d])))
			return "base disk reference " + n(d) + ":" + n(off) + " is out of range";
		break;
	}
	case ChunkKind::Self:
		if (b.stored && !b.stored(r.ref))
			return "refers to a chunk not stored before it";
		break;
	case ChunkKind::Data:
	case ChunkKind::DataXor:
		if (r.ref)
			return "data record with a reference";
		if (r.kind == ChunkKind::DataXor && b.base_known &&
		    (r.space == kMemorySpace ? r.chunk >= b.base_memory_pages
		                             : r.space - 1u >= b.base_disk_bytes.size() ||
		                                   (r.chunk + 1) * kChunkSize > b.base_disk_bytes[r.space - 1u]))
			return "a delta against a base chunk that does not exist";
		break;
	case ChunkKind::ShiftXor:
		if (!valid_shift(r.shift))
			return "shift " + std::to_string(r.shift) + " is out of range";
		if (b.stored && !b.stored(r.ref))
			return "refers to a chunk not stored before it";
		break;
	}
	return {};
}

} // namespace cloudlet::chunk
