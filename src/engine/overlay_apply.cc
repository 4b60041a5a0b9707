#include "engine/overlay_apply.h"

#include "chunk/chunk_ref.h"
#include "util/error.h"

#include <algorithm>
#include <cstring>

namespace cloudlet::engine {

using chunk::kChunkSize;

namespace {

using chunk::ChunkKind;

// memory_ tags
constexpr uint64_t kTagShift = 60, kRefMask = (1ull << kTagShift) - 1;
enum : uint64_t { kSame = 0, kZero = 1, kBaseMemory = 2, kBaseDisk = 3, kStored = 4 };
uint64_t tag(uint64_t kind, uint64_t ref) { return kind << kTagShift | ref; }
// A base disk reference as a memory tag: the disk above bit 48, the offset in 512-byte sectors (see page()).
uint64_t base_disk_tag(uint64_t ref) {
	auto [d, off] = chunk::unpack_ref(ref);
	return tag(kBaseDisk, uint64_t(d) << 48 | off / 512);
}

} // namespace

OverlayApplier::OverlayApplier(const ApplyBase &base, const format::OverlayHeader &h,
                               const std::vector<std::string> &layers, const std::string &scratch_dir,
                               Progress &progress)
    : base_(base), progress_(progress), spill_(scratch_dir), buf_(kChunkSize), page_buf_(kChunkSize), view_(kChunkSize), zero_(kChunkSize, 0) {
	if (layers.size() != h.disks.size() || base.disks.size() != h.disks.size())
		fail(CLOUDLET_E_INTERNAL, "overlay applier: disk counts disagree");
	info_.version = h.stream_version;
	info_.config_section = h.config_section;
	info_.ram_section_id = h.ram_section_id;
	info_.ram_instance_id = h.ram_instance_id;
	info_.ram_version = h.ram_version;
	// Before the page table is sized by the header (an OFFER's or an
	// overlay's, both from outside).
	format::check_launch_memory(h, base.memory->stream_info().total_pages, "the overlay's header");
	uint64_t first = 0;
	for (const auto &b : h.ram_blocks) {
		qemu::RamBlock rb;
		rb.name = b.name;
		rb.length = b.bytes;
		rb.first_page = first;
		first += rb.pages();
		info_.blocks.push_back(rb);
	}
	info_.total_pages = first;
	if (first != h.total_pages)
		fail(CLOUDLET_E_CORRUPT, "the overlay's RAM blocks add up to " + std::to_string(first) + " pages, its header says " +
		                             std::to_string(h.total_pages));
	// Unrecorded pages are the base's at the same position only when the
	// layouts agree (the overlay was made that way: docs/overlays.md).
	same_layout_ = qemu::same_ram_layout(base.memory->stream_info().blocks, info_.blocks);
	memory_.assign(info_.total_pages, same_layout_ ? tag(kSame, 0) : tag(kZero, 0));
	for (size_t d = 0; d < layers.size(); d++) {
		layer_specs_.push_back({layers[d], h.disks[d].bytes});
		layers_.push_back(std::make_unique<qemu::Qcow2LayerWriter>(layers[d], h.disks[d].bytes, base.disks[d].path, "raw"));
	}
	// Handoff items (apply_versioned) are checked against the launch layout
	// and the base; SELF and SHIFT_XOR name the n-th stored chunk of the session.
	format::BaseBounds known{true, base.memory->stream_info().total_pages, {}};
	for (const auto &d : base.disks)
		known.disk_bytes.push_back(d.bytes);
	item_rules_ = format::record_bounds(h, known);
	item_rules_.stored = [this](uint64_t ref) { return ref < spill_slots_; };
}

// The 4096 bytes a record stands for, for kinds that reference content.
const uint8_t *OverlayApplier::content_of(uint8_t space, uint64_t chunk, const chunk::ChunkRecord &r,
                                          const uint8_t *data) {
	switch (r.kind) {
	case ChunkKind::BaseMemory: {
		const uint8_t *p = base_.memory->page(r.ref);
		return p ? p : zero_.data();
	}
	case ChunkKind::BaseDisk: {
		auto [d, off] = chunk::unpack_ref(r.ref);
		if (d >= base_.disks.size() || off + kChunkSize > base_.disks[d].bytes)
			fail(CLOUDLET_E_CORRUPT, "overlay refers to base disk " + std::to_string(d) + " at " + std::to_string(off) +
			                             ", beyond its end");
		return base_.disks[d].data + off;
	}
	case ChunkKind::Self: {
		auto it = stored_.find(r.ref);
		if (it == stored_.end())
			fail(CLOUDLET_E_CORRUPT, "overlay refers to a chunk it has not stored");
		spill_.read(it->second, buf_.data());
		return buf_.data();
	}
	case ChunkKind::Data:
		return data;
	case ChunkKind::ShiftXor: {
		// The reference: the n-th stored chunk (handoff) or the stored
		// chunk of that (space, chunk) (overlay), like SELF.
		uint64_t slot = 0;
		if (versioned_) {
			if (r.ref >= spill_slots_)
				fail(CLOUDLET_E_CORRUPT, "handoff item refers to stored chunk " + std::to_string(r.ref) + " of " +
				                             std::to_string(spill_slots_));
			slot = r.ref;
		} else {
			auto it = stored_.find(r.ref);
			if (it == stored_.end())
				fail(CLOUDLET_E_CORRUPT, "overlay refers to a chunk it has not stored");
			slot = it->second;
		}
		if (!chunk::valid_shift(r.shift))
			fail(CLOUDLET_E_CORRUPT, "shifted delta with shift " + std::to_string(r.shift));
		spill_.read(slot, buf_.data());
		shifted_view(buf_.data(), r.shift, view_.data());
		for (size_t i = 0; i < kChunkSize; i++)
			buf_[i] = data[i] ^ view_[i];
		return buf_.data();
	}
	case ChunkKind::DataXor: {
		const uint8_t *b;
		if (space == chunk::kMemorySpace) {
			b = chunk < base_.memory->stream_info().total_pages ? base_.memory->page(chunk) : nullptr;
			if (!same_layout_)
				fail(CLOUDLET_E_CORRUPT, "overlay has a memory delta although its memory layout differs from the base");
		} else {
			const auto &disk = base_.disks[space - 1u];
			if ((chunk + 1) * kChunkSize > disk.bytes)
				fail(CLOUDLET_E_CORRUPT, "overlay has a delta against base disk data that does not exist");
			b = disk.data + chunk * kChunkSize;
		}
		for (size_t i = 0; i < kChunkSize; i++)
			buf_[i] = data[i] ^ (b ? b[i] : 0);
		return buf_.data();
	}
	default:
		return nullptr;
	}
}

void OverlayApplier::on_chunk(const chunk::ChunkRecord &r, const uint8_t *data) {
	if ((++applied_ & 4095) == 0)
		progress_.report("apply", applied_, 0);
	if (r.space == chunk::kMemorySpace) {
		uint64_t &t = memory_.at(r.chunk);
		switch (r.kind) {
		case ChunkKind::Zero:
			t = tag(kZero, 0);
			return;
		case ChunkKind::BaseMemory:
			t = tag(kBaseMemory, r.ref);
			return;
		case ChunkKind::BaseDisk: {
			content_of(r.space, r.chunk, r, data); // bounds check
			t = base_disk_tag(r.ref);
			return;
		}
		default:
			break;
		}
	}
	const uint8_t *content = content_of(r.space, r.chunk, r, data);
	if (chunk::stores_payload(r.kind) || r.space == chunk::kMemorySpace) {
		// Stored chunks may be referred to later (SELF); memory pages are
		// read back when the stream is written.
		uint64_t slot;
		if (r.kind == ChunkKind::Self && r.space == chunk::kMemorySpace)
			slot = stored_.at(r.ref);
		else
			slot = spill_.append(content);
		if (chunk::stores_payload(r.kind))
			stored_[chunk::pack_ref(r.space, r.chunk)] = slot;
		if (r.space == chunk::kMemorySpace) {
			memory_.at(r.chunk) = tag(kStored, slot);
			return;
		}
	}
	auto &layer = *layers_.at(r.space - 1u);
	if (r.kind == ChunkKind::Zero)
		layer.zero_chunk(r.chunk);
	else
		layer.write_chunk(r.chunk, content);
}

void OverlayApplier::set_versioned() {
	versioned_ = true;
	memory_version_.assign(memory_.size(), 0);
	disk_latest_.resize(layers_.size());
	for (auto &l : layers_)
		l->finish(); // empty: everything from the base, until finish() rewrites it
}

bool OverlayApplier::apply_versioned(const chunk::ChunkRecord &r, const uint8_t *data, uint64_t version) {
	if ((++applied_ & 4095) == 0)
		progress_.report("apply", applied_, 0);
	if (std::string why = chunk::record_problem(r, item_rules_); !why.empty())
		fail(CLOUDLET_E_CORRUPT, "handoff item for chunk " + std::to_string(r.chunk) + " of space " +
		                             std::to_string(r.space) + ": " + why);
	// Stored content takes the next slot even when a newer version is
	// already here: the sender counts every stored chunk for SELF.
	uint64_t slot = 0;
	if (chunk::stores_payload(r.kind)) {
		slot = spill_.append(content_of(r.space, r.chunk, r, data));
		spill_slots_++;
	} else if (r.kind == ChunkKind::Self) {
		slot = r.ref;
	}
	bool stored = chunk::stores_payload(r.kind) || r.kind == ChunkKind::Self;
	if (r.space == chunk::kMemorySpace) {
		if (version < memory_version_[r.chunk])
			return false;
		memory_version_[r.chunk] = version;
		uint64_t &t = memory_[r.chunk];
		if (stored)
			t = tag(kStored, slot);
		else if (r.kind == ChunkKind::Zero)
			t = tag(kZero, 0);
		else if (r.kind == ChunkKind::BaseMemory)
			t = tag(kBaseMemory, r.ref);
		else
			t = base_disk_tag(r.ref);
		return true;
	}
	DiskLatest &d = disk_latest_[r.space - 1u][r.chunk];
	if (version < d.version)
		return false;
	d.version = version;
	d.kind = stored ? ChunkKind::Data : r.kind;
	d.ref = stored ? slot : r.ref;
	return true;
}

void OverlayApplier::on_device_state(const std::vector<uint8_t> &ds) { info_.device_state = ds; }

void OverlayApplier::finish() {
	if (versioned_) {
		// Rewritten in place (the same inode a QEMU may hold open).
		for (size_t d = 0; d < layers_.size(); d++)
			layers_[d] = std::make_unique<qemu::Qcow2LayerWriter>(layer_specs_[d].path, layer_specs_[d].bytes,
			                                                      base_.disks[d].path, "raw", true);
		for (size_t d = 0; d < disk_latest_.size(); d++) {
			std::vector<std::pair<uint64_t, DiskLatest>> v(disk_latest_[d].begin(), disk_latest_[d].end());
			std::sort(v.begin(), v.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
			for (const auto &[chunk, e] : v) {
				chunk::ChunkRecord r{static_cast<uint8_t>(d + 1), e.kind, chunk, e.ref};
				if (e.kind == ChunkKind::Zero) {
					layers_[d]->zero_chunk(chunk);
				} else if (e.kind == ChunkKind::Data) {
					spill_.read(e.ref, buf_.data());
					layers_[d]->write_chunk(chunk, buf_.data());
				} else {
					layers_[d]->write_chunk(chunk, content_of(r.space, chunk, r, nullptr));
				}
			}
		}
	}
	for (auto &l : layers_)
		l->finish();
}

const uint8_t *OverlayApplier::page(uint64_t linear) const {
	uint64_t t = memory_.at(linear);
	uint64_t ref = t & kRefMask;
	switch (t >> kTagShift) {
	case kSame:
		return base_.memory->page(linear);
	case kZero:
		return nullptr;
	case kBaseMemory:
		return base_.memory->page(ref);
	case kBaseDisk:
		return base_.disks[ref >> 48].data + (ref & ((1ull << 48) - 1)) * 512;
	default:
		spill_.read(ref, page_buf_.data());
		return page_buf_.data();
	}
}

} // namespace cloudlet::engine
