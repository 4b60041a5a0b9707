// Applying an overlay to its base (docs/synthesis.md): the reader hands the
// overlay's verified records over one at a time; disk chunks go straight
// into a qcow2 layer per disk over the base's raw disk, memory records into
// a compact table (8 bytes per guest page) that says where each launch page
// comes from. No copy of the launch memory is made: the launch memory is a
// PageProvider that a stream writer reads while libvirt restores.
#pragma once

#include "engine/dedup.h"
#include "format/overlay_file.h"
#include "image_file.h"
#include "qcow2_layer.h"
#include "util/progress.h"

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace cloudlet::engine {

struct ApplyBase {
	const qemu::PageProvider *memory = nullptr; // the base's memory
	struct Disk {
		const uint8_t *data = nullptr; // the base's raw disk, mapped
		uint64_t bytes = 0;
		std::string path;              // for the qcow2 layer's backing file
	};
	std::vector<Disk> disks;           // in the overlay's disk order
};

class OverlayApplier : public format::OverlaySink, public qemu::PageProvider {
public:
	// `layers`: the qcow2 file to create for each disk, in the overlay's
	// disk order. `scratch_dir`: where stored chunks wait (an unlinked file).
	OverlayApplier(const ApplyBase &base, const format::OverlayHeader &h, const std::vector<std::string> &layers,
	               const std::string &scratch_dir, Progress &progress);

	void on_chunk(const chunk::ChunkRecord &r, const uint8_t *data) override;

	// Handoff (docs/protocols/handoff.md): a chunk may come several times;
	// the highest `version` wins whatever the order, SELF references name
	// the n-th stored chunk of the session, and disk chunks are kept (in the
	// scratch file) until finish() writes each once. Call before any chunk.
	// The disk layers are written at once, empty and valid (a QEMU may open
	// them), and rewritten in place by finish().
	void set_versioned();
	// Returns whether the item took effect (it was the newest version).
	bool apply_versioned(const chunk::ChunkRecord &r, const uint8_t *data, uint64_t version);
	uint64_t stored_chunks() const { return spill_slots_; }
	void on_device_state(const std::vector<uint8_t> &ds) override;
	// Completes the disk layers. Call once the reader returned.
	void finish();

	// The launch memory (valid after finish()). page() returns a pointer
	// valid until the next call: one reader thread at a time. Early start
	// (docs/early-start.md) reads a page on another thread while records
	// still arrive: safe for a page whose record has been applied (the
	// caller orders the two), since page() has a buffer of its own.
	const qemu::StreamInfo &stream_info() const override { return info_; }
	const uint8_t *page(uint64_t linear) const override;

private:
	const uint8_t *content_of(uint8_t space, uint64_t chunk, const chunk::ChunkRecord &r, const uint8_t *data);
	const ApplyBase &base_;
	Progress &progress_;
	qemu::StreamInfo info_;
	bool same_layout_ = true;
	std::vector<std::unique_ptr<qemu::Qcow2LayerWriter>> layers_;
	struct LayerSpec {
		std::string path;
		uint64_t bytes;
	};
	std::vector<LayerSpec> layer_specs_;
	// Per launch page: 0 = the base page at the same position, else the
	// kind in the top 4 bits and its reference below (see page()).
	std::vector<uint64_t> memory_;
	ChunkSpill spill_;
	std::unordered_map<uint64_t, uint64_t> stored_; // chunk key (chunk/chunk_ref.h) -> spill slot (for SELF)
	bool versioned_ = false;
	chunk::RecordBounds item_rules_; // what apply_versioned checks an item against
	std::vector<uint64_t> memory_version_;
	struct DiskLatest {
		uint64_t version = 0;
		chunk::ChunkKind kind = chunk::ChunkKind::Zero;
		uint64_t ref = 0; // kind's reference; spill slot for stored content
	};
	std::vector<std::unordered_map<uint64_t, DiskLatest>> disk_latest_;
	uint64_t spill_slots_ = 0;
	std::vector<uint8_t> buf_;              // content_of's, on the reader's thread
	mutable std::vector<uint8_t> page_buf_; // page()'s
	std::vector<uint8_t> view_;
	std::vector<uint8_t> zero_;
	uint64_t applied_ = 0;
};

} // namespace cloudlet::engine
