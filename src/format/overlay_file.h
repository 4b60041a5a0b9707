// The VM overlay container (docs/formats/overlay.md): a header, self-
// describing segments of chunk records with their compressed payload, and a
// footer for random access. The writer streams to any ByteSink; the reader
// streams from any Reader and verifies everything before handing a chunk on.
#pragma once

#include "byte_reader.h"
#include "chunk/block_codec.h"
#include "chunk/chunk_record.h"
#include "chunk/record_check.h"
#include "stream_parser.h"
#include "stream_writer.h"

#include <cstdint>
#include <deque>
#include <future>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace cloudlet::format {

constexpr uint32_t kMaxSegmentRecords = 65536;
// Format versions (docs/formats/overlay.md): 2 is written; 1 and 2 are read.
// Version 2 puts the disk segments first, then a start block (the device
// state and the set of memory pages the overlay names), then the memory
// segments: a reader can start the VM before the memory has arrived.
constexpr uint32_t kOverlayVersion = 2;
constexpr uint32_t kMaxSegmentPayload = 16u << 20;

struct NamedSize {
	std::string name;
	uint64_t bytes = 0;
};

struct OverlayHeader {
	std::string base_id;
	uint64_t total_pages = 0;
	std::vector<NamedSize> ram_blocks;
	uint32_t stream_version = 3, ram_section_id = 0, ram_instance_id = 0, ram_version = 0;
	std::vector<uint8_t> config_section;
	std::vector<NamedSize> disks; // target, launch size
	std::string domain_xml;
	std::string codec = "zstd";
	int level = 3;
	uint32_t block_bytes = 4u << 20;
	std::string created, creator;

	uint64_t chunks_in(uint8_t space) const; // memory pages or disk chunks
};

// The launch VM's RAM layout from its migration stream into the header.
void set_ram_layout(OverlayHeader &h, const qemu::StreamInfo &info);

// The header's JSON (docs/formats/overlay.md), also the handoff OFFER's.
std::string header_json(const OverlayHeader &h);
// Parses and checks it; CLOUDLET_E_CORRUPT naming `what` on any problem.
OverlayHeader parse_header(const std::string &text, const std::string &what);

class OverlayWriter {
public:
	// `segment_bytes`: payload per segment before compression (1..16 MiB).
	// `threads`: segments compressed at once (in order of writing
	// regardless); memory is bounded by `threads` segments in flight.
	// Version 1 writes the header at once and the segments in the order
	// the records come. Version 2 keeps disk and memory segments apart in
	// two unlinked files in `spill_dir` (the records may come in any order)
	// and writes everything at finish(), with the header given there; a disk
	// record may then not refer to a memory chunk (SELF, SHIFT_XOR), since
	// the memory follows the disks in the file.
	OverlayWriter(qemu::ByteSink &out, const OverlayHeader &h, chunk::Codec codec, int level, size_t segment_bytes,
	              unsigned threads = 1, uint32_t version = kOverlayVersion, const std::string &spill_dir = "/tmp");
	~OverlayWriter();
	// A reference record (every kind but Data).
	void add_ref(uint8_t space, uint64_t chunk, chunk::ChunkKind kind, uint64_t ref);
	// A chunk stored in the overlay (4096 bytes, copied): Data, DataXor
	// with `data` already XORed with the base chunk at the same position, or
	// ShiftXor (r.ref, r.shift) with `data` XORed with the shifted reference.
	void add_data(const chunk::ChunkRecord &r, const uint8_t *data);
	void add_data(uint8_t space, uint64_t chunk, const uint8_t *data, chunk::ChunkKind kind = chunk::ChunkKind::Data) {
		add_data(chunk::ChunkRecord{space, kind, chunk, 0}, data);
	}
	// Flushes the last segment and writes the footer with the launch VM's
	// device state (known only once the migration stream has ended); version
	// 2 writes the whole file now, with `h` as its header (the RAM layout is
	// known only once the stream began). Returns the bytes written in all.
	uint64_t finish(const std::vector<uint8_t> &device_state);
	uint64_t finish(const std::vector<uint8_t> &device_state, const OverlayHeader &h);
	uint64_t payload_bytes() const { return payload_total_; }
	uint64_t stored_bytes() const { return stored_total_; }
	uint64_t segments() const {
		return lanes_[0].table.size() + lanes_[1].table.size() + lanes_[2].table.size() + lanes_[3].table.size();
	}
	// Let the first segment choose the codec: it is compressed with zstd
	// (level 3) and LZMA (level 6), and LZMA is kept for the whole overlay
	// only if it is at least 10 % smaller (docs/overlays.md).
	void choose_codec_from_first_segment() { auto_ = true; }
	// Version 2: memory pages to store ahead of the others whatever their
	// kind (what loading the device state reads: virtio rings). Call before
	// their records come.
	void store_first(const std::vector<uint64_t> &pages);
	bool is_first(uint64_t page) const;
	chunk::Codec codec() const { return codec_; }

private:
	struct Compressed {
		std::vector<uint8_t> bytes; // the whole segment, magic to end
		uint64_t hash = 0, payload = 0, stored = 0;
	};
	struct TableEntry {
		uint64_t offset, bytes, hash;
	};
	// Where segments go: version 1, one lane straight to the output; version
	// 2, each lane into a spill file, in file order: 0 the disks', 1 the
	// store_first pages (what loading the device state reads), 2 the memory
	// records without payload or with a delta against their base page
	// (small, and what a resumed guest's kernel touches first: page tables,
	// stacks), 3 the memory's data and what refers to it
	// (docs/early-start.md).
	struct Lane {
		std::vector<chunk::ChunkRecord> records;
		std::vector<uint8_t> payload;
		std::unique_ptr<qemu::ByteSink> spill; // version 2
		int spill_fd = -1;
		uint64_t offset = 0; // in the output (version 1) or the spill file
		std::vector<TableEntry> table;
	};
	// The lane of a record, noting it (named pages, stored chunks' lanes);
	// refuses a version 2 disk record that refers to memory.
	Lane &lane_for(const chunk::ChunkRecord &r);
	void added(Lane &l);
	void flush_segment(int lane);
	void write_oldest();
	void copy_spill(Lane &l);
	void write_header(const OverlayHeader &h);
	uint64_t write_footer(const std::vector<uint8_t> &device_state);
	qemu::ByteSink &out_;
	OverlayHeader header_;
	uint32_t version_;
	unsigned threads_;
	std::deque<std::pair<int, std::future<Compressed>>> pending_; // lane, segment
	chunk::Codec codec_;
	bool auto_ = false;
	int level_;
	size_t segment_bytes_;
	Lane lanes_[4];
	std::vector<uint8_t> named_; // version 2: bitmap of the memory pages named
	std::vector<uint64_t> first_; // version 2: store_first's pages, sorted
	std::unordered_map<uint64_t, int> stored_lane_; // version 2: memory chunk stored -> its lane
	uint64_t offset_ = 0, header_hash_ = 0, payload_total_ = 0, stored_total_ = 0;
};

// What a reader hands on, chunk by chunk, in file order.
class OverlaySink {
public:
	virtual ~OverlaySink() = default;
	virtual void on_header(const OverlayHeader &) {}
	// `data` is the stored 4096 bytes for records that store payload, else null.
	virtual void on_chunk(const chunk::ChunkRecord &r, const uint8_t *data) = 0;
	// The launch VM's device state: version 1 from the footer, after every
	// chunk; version 2 from the start block, after the disk chunks and
	// before the memory's.
	virtual void on_device_state(const std::vector<uint8_t> &) {}
	// Version 2, right after on_device_state: which memory pages the
	// overlay names (bit p of byte p / 8, least significant first); every
	// other page is the base's and final already. Every memory chunk follows.
	virtual void on_start(const std::vector<uint8_t> &named_pages) { (void)named_pages; }
	// After on_start: whether each segment is wanted as soon as it has
	// arrived (a VM runs on it) rather than while the next ones are read.
	virtual bool prompt() const { return false; }
};

// Limits the reader checks references against when the base is known.
struct BaseBounds {
	bool known = false;
	uint64_t memory_pages = 0;
	std::vector<uint64_t> disk_bytes; // per base disk, same order as the overlay's disks
};

// The launch VM's RAM is its base's (it was resumed from it) plus at most
// this many pages of RAM blocks the base lacks (video memory, ROMs; 1 GiB,
// as for a base package's memory image). Refused before anything is sized
// by the header's total_pages (a page table of 8 bytes a page).
constexpr uint64_t kMaxLaunchExtraPages = (1ull << 30) / chunk::kChunkSize;
// Throws CLOUDLET_E_CORRUPT naming `what`, the counts and the bound.
void check_launch_memory(const OverlayHeader &h, uint64_t base_pages, const std::string &what);

// The limits a record of an overlay with header `h` is checked against
// (chunk/record_check.h), with the base's when `base` is known. `stored` is
// left for the reader to fill.
chunk::RecordBounds record_bounds(const OverlayHeader &h, const BaseBounds &base);

struct OverlayCounts {
	uint64_t records[chunk::kChunkKinds] = {}; // by kind, [0] unused
	uint64_t memory_records = 0, disk_records = 0;
	uint64_t segments = 0, payload_bytes = 0, stored_bytes = 0, file_bytes = 0, device_state_bytes = 0;
	uint32_t version = 0; // the file's format version
};

// An upper bound of what applying an overlay writes, from its footer and
// segment headers alone (random access; nothing is decompressed): every
// record may become one 4 KiB chunk, and every stored chunk a second copy.
struct OverlayFootprint {
	uint64_t segments = 0, records = 0, stored_chunks = 0;
	uint64_t bound_bytes() const { return (records + stored_chunks) * chunk::kChunkSize; }
};
// Throws CLOUDLET_E_CORRUPT if the footer or a segment header is malformed.
OverlayFootprint overlay_footprint(int fd, const std::string &name);

// Where a reader's time went. Decoding may run on several threads at once,
// so decode_seconds is summed over them (CPU-side work, not wall time).
struct ReadStats {
	void add_decode(double s) {
		std::lock_guard<std::mutex> l(mu_);
		decode_seconds_ += s;
	}
	double decode_seconds() const {
		std::lock_guard<std::mutex> l(mu_);
		return decode_seconds_;
	}

private:
	mutable std::mutex mu_;
	double decode_seconds_ = 0;
};

// Reads and verifies a whole overlay from the reader's position. With
// `threads` > 1, up to that many segments are checked and decompressed at
// once while the next ones are read; records are still validated and
// handed to the sink one at a time, in file order, on the calling thread.
OverlayCounts read_overlay(qemu::Reader &r, OverlaySink &sink, const BaseBounds &bounds = {}, unsigned threads = 1,
                           ReadStats *stats = nullptr);

} // namespace cloudlet::format
