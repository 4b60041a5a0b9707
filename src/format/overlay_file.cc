#include "format/overlay_file.h"

#include "chunk/chunk_ref.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/json.h"
#include "util/le_bytes.h"

#include <json-c/json.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>

namespace cloudlet::format {

namespace {

constexpr char kMagic[8] = {'C', 'L', 'T', 'O', 'V', 'L', 'v', '1'};
constexpr char kSegMagic[8] = {'C', 'L', 'T', 'S', 'E', 'G', 'v', '1'};
constexpr char kEndMagic[8] = {'C', 'L', 'T', 'O', 'E', 'N', 'D', '1'};
constexpr char kEofMagic[8] = {'C', 'L', 'T', 'O', 'E', 'O', 'F', '1'};
constexpr char kStartMagic[8] = {'C', 'L', 'T', 'S', 'T', 'R', 'T', '1'};
constexpr uint32_t kMinVersion = 1;
constexpr uint32_t kMaxHeader = 64u << 20;
constexpr size_t kSegHeader = 40, kRecord = 24;
constexpr uint64_t kMaxDeviceState = 256ull << 20;

// resize + memcpy: GCC 12 misreads vector::insert of small ranges under -O2
// as out-of-bounds (-Warray-bounds false positives).
void append(std::vector<uint8_t> &b, const void *p, size_t n) {
	size_t at = b.size();
	b.resize(at + n);
	if (n)
		memcpy(b.data() + at, p, n);
}

void put32(std::vector<uint8_t> &b, uint32_t v) {
	for (int i = 0; i < 4; i++)
		b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put64(std::vector<uint8_t> &b, uint64_t v) {
	for (int i = 0; i < 8; i++)
		b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
using le::get32;
using le::get64;
using chunk::ChunkKind;
using chunk::ChunkRecord;
using chunk::kChunkSize;

json_object *sizes_json(const std::vector<NamedSize> &v, const char *name_key) {
	json_object *a = json_object_new_array();
	for (const auto &s : v) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, name_key, json_object_new_string(s.name.c_str()));
		json_object_object_add(o, name_key[0] == 'n' ? "length" : "bytes",
		                       json_object_new_int64(static_cast<int64_t>(s.bytes)));
		json_object_array_add(a, o);
	}
	return a;
}

} // namespace

void set_ram_layout(OverlayHeader &h, const qemu::StreamInfo &info) {
	h.total_pages = info.total_pages;
	h.ram_blocks.clear();
	for (const auto &b : info.blocks)
		h.ram_blocks.push_back({b.name, b.pages() * chunk::kChunkSize});
	h.stream_version = info.version;
	h.ram_section_id = info.ram_section_id;
	h.ram_instance_id = info.ram_instance_id;
	h.ram_version = info.ram_version;
	h.config_section = info.config_section;
}

std::string header_json(const OverlayHeader &h) {
	Json o(json_object_new_object());
	json_object_object_add(o.get(), "base_id", json_object_new_string(h.base_id.c_str()));
	json_object *m = json_object_new_object();
	json_object_object_add(m, "total_pages", json_object_new_int64(static_cast<int64_t>(h.total_pages)));
	json_object_object_add(m, "blocks", sizes_json(h.ram_blocks, "name"));
	json_object_object_add(m, "stream_version", json_object_new_int64(h.stream_version));
	json_object_object_add(m, "ram_section_id", json_object_new_int64(h.ram_section_id));
	json_object_object_add(m, "ram_instance_id", json_object_new_int64(h.ram_instance_id));
	json_object_object_add(m, "ram_version", json_object_new_int64(h.ram_version));
	json_object_object_add(m, "config_section", json_object_new_string(base64_encode(h.config_section).c_str()));
	json_object_object_add(o.get(), "memory", m);
	json_object_object_add(o.get(), "disks", sizes_json(h.disks, "target"));
	json_object_object_add(o.get(), "domain_xml", json_object_new_string(h.domain_xml.c_str()));
	json_object *opt = json_object_new_object();
	json_object_object_add(opt, "codec", json_object_new_string(h.codec.c_str()));
	json_object_object_add(opt, "level", json_object_new_int(h.level));
	json_object_object_add(opt, "block_bytes", json_object_new_int64(h.block_bytes));
	json_object_object_add(o.get(), "options", opt);
	json_object_object_add(o.get(), "created", json_object_new_string(h.created.c_str()));
	json_object_object_add(o.get(), "creator", json_object_new_string(h.creator.c_str()));
	return json_object_to_json_string_ext(o.get(), JSON_C_TO_STRING_PLAIN);
}

namespace {

// Field access that refuses what is missing or of the wrong type.
class Fields {
public:
	explicit Fields(std::string what) : what_(std::move(what)) {}
	json_object *get(json_object *o, const char *k, json_type t) const {
		json_object *v = nullptr;
		if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, t))
			fail(CLOUDLET_E_CORRUPT, what_ + ": header field '" + k + "' is missing or of the wrong type");
		return v;
	}
	std::string str(json_object *o, const char *k) const { return json_object_get_string(get(o, k, json_type_string)); }
	uint64_t num(json_object *o, const char *k, uint64_t max) const {
		int64_t v = json_object_get_int64(get(o, k, json_type_int));
		if (v < 0 || static_cast<uint64_t>(v) > max)
			fail(CLOUDLET_E_CORRUPT, what_ + ": header field '" + k + "' = " + std::to_string(v) + " is out of range");
		return static_cast<uint64_t>(v);
	}

private:
	std::string what_;
};

} // namespace

OverlayHeader parse_header(const std::string &text, const std::string &what) {
	json_tokener *tok = json_tokener_new();
	Json doc(json_tokener_parse_ex(tok, text.c_str(), static_cast<int>(text.size())));
	json_tokener_error jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!doc || jerr != json_tokener_success || !json_object_is_type(doc.get(), json_type_object))
		fail(CLOUDLET_E_CORRUPT, what + ": the overlay header is not a JSON object");
	Fields f(what);
	OverlayHeader h;
	h.base_id = f.str(doc.get(), "base_id");
	if (h.base_id.size() != 64 || h.base_id.find_first_not_of("0123456789abcdef") != std::string::npos)
		fail(CLOUDLET_E_CORRUPT, what + ": base_id is not a SHA-256");
	json_object *m = f.get(doc.get(), "memory", json_type_object);
	h.total_pages = f.num(m, "total_pages", 1ull << 28); // 1 TiB of RAM
	json_object *blocks = f.get(m, "blocks", json_type_array);
	uint64_t pages = 0;
	for (size_t i = 0; i < json_object_array_length(blocks) && i < 512; i++) {
		json_object *b = json_object_array_get_idx(blocks, i);
		NamedSize s{f.str(b, "name"), f.num(b, "length", 1ull << 40)};
		if (s.bytes == 0 || s.bytes % kChunkSize)
			fail(CLOUDLET_E_CORRUPT, what + ": RAM block '" + s.name + "' length is not a positive multiple of 4096");
		pages += s.bytes / kChunkSize;
		h.ram_blocks.push_back(s);
	}
	if (pages != h.total_pages || json_object_array_length(blocks) > 512)
		fail(CLOUDLET_E_CORRUPT, what + ": RAM blocks do not add up to total_pages");
	h.stream_version = static_cast<uint32_t>(f.num(m, "stream_version", 0xffffffff));
	h.ram_section_id = static_cast<uint32_t>(f.num(m, "ram_section_id", 0xffffffff));
	h.ram_instance_id = static_cast<uint32_t>(f.num(m, "ram_instance_id", 0xffffffff));
	h.ram_version = static_cast<uint32_t>(f.num(m, "ram_version", 0xffffffff));
	h.config_section = base64_decode(f.str(m, "config_section"), what + ": config_section");
	json_object *disks = f.get(doc.get(), "disks", json_type_array);
	if (json_object_array_length(disks) > 254)
		fail(CLOUDLET_E_CORRUPT, what + ": more than 254 disks");
	for (size_t i = 0; i < json_object_array_length(disks); i++) {
		json_object *d = json_object_array_get_idx(disks, i);
		h.disks.push_back({f.str(d, "target"), f.num(d, "bytes", 1ull << 46)});
	}
	h.domain_xml = f.str(doc.get(), "domain_xml");
	json_object *opt = f.get(doc.get(), "options", json_type_object);
	h.codec = f.str(opt, "codec");
	h.level = static_cast<int>(f.num(opt, "level", 22));
	h.block_bytes = static_cast<uint32_t>(f.num(opt, "block_bytes", kMaxSegmentPayload));
	h.created = f.str(doc.get(), "created");
	h.creator = f.str(doc.get(), "creator");
	return h;
}

uint64_t OverlayHeader::chunks_in(uint8_t space) const {
	if (space == chunk::kMemorySpace)
		return total_pages;
	size_t d = space - 1u;
	return d < disks.size() ? (disks[d].bytes + kChunkSize - 1) / kChunkSize : 0;
}

void check_launch_memory(const OverlayHeader &h, uint64_t base_pages, const std::string &what) {
	if (h.total_pages > base_pages + kMaxLaunchExtraPages)
		fail(CLOUDLET_E_CORRUPT, what + ": the launch VM's RAM blocks hold " + std::to_string(h.total_pages) +
		                             " pages, more than its base's " + std::to_string(base_pages) + " + " +
		                             std::to_string(kMaxLaunchExtraPages) + " allow");
}

chunk::RecordBounds record_bounds(const OverlayHeader &h, const BaseBounds &base) {
	chunk::RecordBounds b;
	b.disks = static_cast<uint8_t>(h.disks.size());
	for (size_t space = 0; space <= h.disks.size(); space++)
		b.space_chunks.push_back(h.chunks_in(static_cast<uint8_t>(space)));
	b.base_known = base.known;
	b.base_memory_pages = base.memory_pages;
	b.base_disk_bytes = base.disk_bytes;
	return b;
}

// ---------------------------------------------------------------------------

OverlayWriter::OverlayWriter(qemu::ByteSink &out, const OverlayHeader &h, chunk::Codec codec, int level,
                             size_t segment_bytes, unsigned threads, uint32_t version, const std::string &spill_dir)
    : out_(out), header_(h), version_(version), threads_(threads), codec_(codec), level_(level),
      segment_bytes_(std::clamp<size_t>(segment_bytes, kChunkSize, kMaxSegmentPayload)) {
	if (version < kMinVersion || version > kOverlayVersion)
		fail(CLOUDLET_E_INTERNAL, "overlay writer: no format version " + std::to_string(version));
	if (version == 1) {
		write_header(h);
		return;
	}
	for (Lane &l : lanes_) {
		// Unlinked from the start: nothing to clean up if we die.
		l.spill_fd = open(spill_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (l.spill_fd < 0)
			fail_errno("cannot create a temporary file in " + spill_dir, errno);
		l.spill = std::make_unique<qemu::FdSink>(l.spill_fd, "a temporary file in " + spill_dir);
	}
}

void OverlayWriter::write_header(const OverlayHeader &h) {
	std::string json = header_json(h);
	if (json.size() > kMaxHeader)
		fail(CLOUDLET_E_INVALID_ARG, "overlay header larger than 64 MiB");
	std::vector<uint8_t> b;
	append(b, kMagic, 8);
	put32(b, version_);
	put32(b, static_cast<uint32_t>(json.size()));
	append(b, json.data(), json.size());
	header_hash_ = XXH64(b.data(), b.size(), 0);
	out_.write(b.data(), b.size());
	offset_ = b.size();
}

OverlayWriter::Lane &OverlayWriter::lane_for(const ChunkRecord &r) {
	if (version_ == 1)
		return lanes_[0];
	bool to_memory = (r.kind == ChunkKind::Self || r.kind == ChunkKind::ShiftXor) &&
	                 chunk::unpack_ref(r.ref).selector == chunk::kMemorySpace;
	if (r.space != chunk::kMemorySpace) {
		if (to_memory)
			fail(CLOUDLET_E_INTERNAL, "a disk chunk refers to a memory chunk, which a version 2 overlay stores later");
		return lanes_[0];
	}
	named_.resize(std::max<size_t>(named_.size(), r.chunk / 8 + 1), 0);
	named_[r.chunk / 8] |= static_cast<uint8_t>(1u << (r.chunk % 8));
	int lane = is_first(r.chunk) ? 1 : r.kind == ChunkKind::Data ? 3 : 2;
	// A reference to a stored memory chunk goes no earlier than that chunk's
	// lane (within a lane, records keep their order).
	if (to_memory) {
		auto it = stored_lane_.find(chunk::unpack_ref(r.ref).position);
		lane = std::max(lane, it == stored_lane_.end() ? 3 : it->second);
	}
	if (chunk::stores_payload(r.kind))
		stored_lane_[r.chunk] = lane;
	return lanes_[lane];
}

bool OverlayWriter::is_first(uint64_t page) const { return std::binary_search(first_.begin(), first_.end(), page); }

void OverlayWriter::store_first(const std::vector<uint64_t> &pages) {
	first_ = pages;
	std::sort(first_.begin(), first_.end());
}

void OverlayWriter::added(Lane &l) {
	// Lanes 1 and 2 (what a VM started early needs first) in small
	// segments: a reader may use a segment only once all of it has arrived.
	size_t limit = version_ >= 2 && (&l == &lanes_[1] || &l == &lanes_[2]) ? std::min<size_t>(segment_bytes_, 256u << 10)
	                                                                      : segment_bytes_;
	if (l.payload.size() >= limit || l.records.size() >= kMaxSegmentRecords)
		flush_segment(static_cast<int>(&l - lanes_));
}

void OverlayWriter::add_ref(uint8_t space, uint64_t chunk, ChunkKind kind, uint64_t ref) {
	if (chunk::stores_payload(kind))
		fail(CLOUDLET_E_INTERNAL, "add_ref with a record that stores data");
	ChunkRecord rec{space, kind, chunk, ref};
	Lane &l = lane_for(rec);
	l.records.push_back(rec);
	added(l);
}

void OverlayWriter::add_data(const ChunkRecord &r, const uint8_t *data) {
	if (!chunk::stores_payload(r.kind))
		fail(CLOUDLET_E_INTERNAL, "add_data with a reference record");
	if ((r.kind == ChunkKind::ShiftXor) != chunk::valid_shift(r.shift) || (r.kind != ChunkKind::ShiftXor && r.ref))
		fail(CLOUDLET_E_INTERNAL, "add_data with a reference or shift its kind does not take");
	Lane &l = lane_for(r);
	l.records.push_back(r);
	append(l.payload, data, kChunkSize);
	added(l);
}

OverlayWriter::~OverlayWriter() {
	// Abandoned (an error upstream): let running compressions finish quietly.
	for (auto &f : pending_)
		if (f.second.valid())
			f.second.wait();
	for (Lane &l : lanes_) {
		l.spill.reset();
		if (l.spill_fd >= 0)
			close(l.spill_fd);
	}
}

void OverlayWriter::flush_segment(int lane) {
	Lane &l = lanes_[lane];
	if (l.records.empty())
		return;
	// Records and payload are compressed together: records are regular
	// (runs of chunk numbers) and compress well.
	std::vector<uint8_t> raw;
	raw.reserve(l.records.size() * kRecord + l.payload.size());
	for (const auto &r : l.records) {
		uint8_t rec[kRecord] = {r.space, static_cast<uint8_t>(r.kind)};
		chunk::put_shift(rec, r.shift);
		for (int i = 0; i < 8; i++) {
			rec[8 + i] = static_cast<uint8_t>(r.chunk >> (8 * i));
			rec[16 + i] = static_cast<uint8_t>(r.ref >> (8 * i));
		}
		append(raw, rec, kRecord);
	}
	append(raw, l.payload.data(), l.payload.size());
	if (auto_) {
		auto_ = false;
		std::vector<uint8_t> z, x;
		chunk::compress_block(chunk::Codec::Zstd, -1, raw.data(), raw.size(), z);
		chunk::compress_block(chunk::Codec::Lzma, -1, raw.data(), raw.size(), x);
		bool lzma = x.size() * 10 <= z.size() * 9;
		codec_ = lzma ? chunk::Codec::Lzma : chunk::Codec::Zstd;
		level_ = chunk::default_level(codec_);
	}
	uint32_t nrec = static_cast<uint32_t>(l.records.size());
	uint64_t payload = l.payload.size();
	l.records.clear();
	l.payload.clear();
	auto job = [codec = codec_, level = level_, nrec, payload, raw = std::move(raw)]() {
		Compressed c;
		std::vector<uint8_t> stored;
		chunk::Codec used = codec;
		if (used != chunk::Codec::None) {
			chunk::compress_block(used, level, raw.data(), raw.size(), stored);
			if (stored.size() >= raw.size()) // incompressible: keep it plain
				used = chunk::Codec::None;
		}
		const std::vector<uint8_t> &body = used == chunk::Codec::None ? raw : stored;
		append(c.bytes, kSegMagic, 8);
		put32(c.bytes, static_cast<uint32_t>(used));
		put32(c.bytes, nrec);
		put32(c.bytes, static_cast<uint32_t>(raw.size()));
		put32(c.bytes, static_cast<uint32_t>(body.size()));
		c.hash = XXH64(body.data(), body.size(), 0);
		put64(c.bytes, c.hash);
		put64(c.bytes, XXH64(raw.data(), raw.size(), 0));
		put64(c.bytes, 0);
		append(c.bytes, body.data(), body.size());
		c.payload = payload;
		c.stored = body.size();
		return c;
	};
	if (threads_ <= 1) {
		std::promise<Compressed> p;
		p.set_value(job());
		pending_.emplace_back(lane, p.get_future());
	} else {
		pending_.emplace_back(lane, std::async(std::launch::async, std::move(job)));
	}
	while (pending_.size() >= std::max(1u, threads_))
		write_oldest();
}

void OverlayWriter::write_oldest() {
	int lane = pending_.front().first;
	Compressed c = pending_.front().second.get(); // rethrows a compression failure
	pending_.pop_front();
	Lane &l = lanes_[lane];
	qemu::ByteSink &to = l.spill ? *l.spill : out_;
	to.write(c.bytes.data(), c.bytes.size());
	uint64_t &at = l.spill ? l.offset : offset_;
	l.table.push_back({at, c.bytes.size(), c.hash});
	at += c.bytes.size();
	payload_total_ += c.payload;
	stored_total_ += c.stored;
}

// Appends a spill file to the output; its table entries become file offsets.
void OverlayWriter::copy_spill(Lane &l) {
	static_cast<qemu::FdSink &>(*l.spill).flush();
	std::vector<uint8_t> buf(1u << 20);
	for (uint64_t at = 0; at < l.offset;) {
		ssize_t n = pread(l.spill_fd, buf.data(), std::min<uint64_t>(buf.size(), l.offset - at), static_cast<off_t>(at));
		if (n <= 0)
			fail_errno("cannot read back an overlay's temporary file", n < 0 ? errno : EIO);
		out_.write(buf.data(), static_cast<size_t>(n));
		at += static_cast<uint64_t>(n);
	}
	for (auto &e : l.table)
		e.offset += offset_;
	offset_ += l.offset;
}

namespace {

// A block stored with its codec: u32 codec, u64 bytes, u64 bytes stored,
// the stored bytes (the codec dropped when it does not help).
void put_block(std::vector<uint8_t> &f, chunk::Codec codec, int level, const std::vector<uint8_t> &raw) {
	std::vector<uint8_t> st;
	if (codec != chunk::Codec::None && !raw.empty()) {
		chunk::compress_block(codec, level, raw.data(), raw.size(), st);
		if (st.size() >= raw.size())
			codec = chunk::Codec::None;
	} else {
		codec = chunk::Codec::None;
	}
	const std::vector<uint8_t> &body = codec == chunk::Codec::None ? raw : st;
	put32(f, static_cast<uint32_t>(codec));
	put64(f, raw.size());
	put64(f, body.size());
	append(f, body.data(), body.size());
}

} // namespace

uint64_t OverlayWriter::write_footer(const std::vector<uint8_t> &device_state) {
	std::vector<uint8_t> f;
	append(f, kEndMagic, 8);
	uint32_t n = static_cast<uint32_t>(segments());
	put32(f, n);
	for (const Lane &l : lanes_)
		for (const auto &t : l.table) {
			put64(f, t.offset);
			put64(f, t.bytes);
			put64(f, t.hash);
		}
	put_block(f, codec_, level_, device_state);
	put64(f, XXH64(device_state.data(), device_state.size(), 0));
	put64(f, header_hash_);
	put64(f, offset_);
	append(f, kEofMagic, 8);
	out_.write(f.data(), f.size());
	offset_ += f.size();
	return offset_;
}

uint64_t OverlayWriter::finish(const std::vector<uint8_t> &device_state) { return finish(device_state, header_); }

uint64_t OverlayWriter::finish(const std::vector<uint8_t> &device_state, const OverlayHeader &h) {
	for (int lane = 0; lane < 4; lane++)
		flush_segment(lane);
	while (!pending_.empty())
		write_oldest();
	if (device_state.size() > kMaxDeviceState)
		fail(CLOUDLET_E_INVALID_ARG, "device state larger than 256 MiB");
	if (version_ == 1)
		return write_footer(device_state);

	// Version 2: header, disk segments, start block, memory segments, and
	// a footer whose device state is empty (it is in the start block).
	uint64_t bitmap_bytes = (h.total_pages + 7) / 8;
	if (named_.size() > bitmap_bytes)
		fail(CLOUDLET_E_INTERNAL, "overlay writer: a memory record beyond the header's pages");
	named_.resize(bitmap_bytes, 0);
	write_header(h);
	copy_spill(lanes_[0]);
	std::vector<uint8_t> raw;
	put64(raw, device_state.size());
	append(raw, device_state.data(), device_state.size());
	put64(raw, h.total_pages);
	append(raw, named_.data(), named_.size());
	std::vector<uint8_t> b;
	append(b, kStartMagic, 8);
	put_block(b, codec_, level_, raw);
	put64(b, XXH64(raw.data(), raw.size(), 0));
	out_.write(b.data(), b.size());
	offset_ += b.size();
	copy_spill(lanes_[1]);
	copy_spill(lanes_[2]);
	copy_spill(lanes_[3]);
	return write_footer({});
}

// ---------------------------------------------------------------------------

OverlayFootprint overlay_footprint(int fd, const std::string &name) {
	auto bad = [&](const std::string &why) { fail(CLOUDLET_E_CORRUPT, name + ": " + why); };
	auto at = [&](uint64_t off, uint8_t *buf, size_t n) {
		if (pread(fd, buf, n, static_cast<off_t>(off)) != static_cast<ssize_t>(n))
			bad("cannot read " + std::to_string(n) + " bytes at offset " + std::to_string(off) + " (truncated?)");
	};
	struct stat st {};
	if (fstat(fd, &st) != 0)
		fail_errno("cannot stat " + name, errno);
	uint64_t size = static_cast<uint64_t>(st.st_size);
	if (size < 64)
		bad("too short to be an overlay");
	uint8_t head[8], tail[16];
	at(0, head, 8);
	if (memcmp(head, kMagic, 8) != 0)
		bad("not a libcloudlet overlay (bad magic)");
	at(size - 16, tail, 16);
	if (memcmp(tail + 8, kEofMagic, 8) != 0)
		bad("an overlay without its end (no end magic: truncated?)");
	uint64_t footer = get64(tail);
	uint8_t fh[12];
	if (footer > size - 12)
		bad("footer offset out of range");
	at(footer, fh, 12);
	if (memcmp(fh, kEndMagic, 8) != 0)
		bad("no footer magic at the footer offset");
	OverlayFootprint f;
	f.segments = get32(fh + 8);
	if (f.segments > (size - footer) / 24)
		bad("segment table longer than the file");
	std::vector<uint8_t> table(f.segments * 24);
	at(footer + 12, table.data(), table.size());
	for (uint64_t i = 0; i < f.segments; i++) {
		uint64_t off = get64(table.data() + 24 * i);
		uint8_t sh[8 + kSegHeader];
		if (off > footer)
			bad("segment table entry out of range");
		at(off, sh, sizeof sh);
		if (memcmp(sh, kSegMagic, 8) != 0)
			bad("segment table entry " + std::to_string(i) + " does not point at a segment");
		uint64_t n = get32(sh + 12), rawlen = get32(sh + 16);
		if (n == 0 || n > kMaxSegmentRecords || rawlen < n * kRecord)
			bad("segment " + std::to_string(i) + " header out of range");
		f.records += n;
		f.stored_chunks += (rawlen - n * kRecord) / kChunkSize;
	}
	return f;
}

namespace {

// put_block's reader, and the XXH64 of the block's bytes that follows it:
// sizes checked (`min_bytes` .. `max_bytes` once decompressed) and the
// stored form checked against them before the declared size is allocated.
// `what` names it in errors ("device state", "start block").
template <class ReadInto>
std::vector<uint8_t> get_block(qemu::Reader &r, ReadInto &read_into, uint64_t min_bytes, uint64_t max_bytes,
                               const std::string &what) {
	uint64_t at = r.offset();
	const uint8_t *bh = r.bytes(20, (what + " header").c_str());
	uint32_t codec = get32(bh);
	uint64_t raw_len = get64(bh + 4), stored_len = get64(bh + 12);
	if (codec > 2 || raw_len < min_bytes || raw_len > max_bytes || stored_len > raw_len + (1u << 20))
		r.fail_at(at, what + " header out of range (codec " + std::to_string(codec) + ", " + std::to_string(raw_len) +
		                  " bytes, " + std::to_string(stored_len) + " stored)");
	std::vector<uint8_t> body;
	read_into(body, stored_len, what.c_str());
	chunk::check_stored_block(static_cast<chunk::Codec>(codec), body.data(), body.size(), raw_len, "overlay " + what);
	std::vector<uint8_t> raw(raw_len);
	chunk::decompress_block(static_cast<chunk::Codec>(codec), body.data(), body.size(), raw.data(), raw.size(),
	                        "overlay " + what);
	if (get64(r.bytes(8, (what + " checksum").c_str())) != XXH64(raw.data(), raw.size(), 0))
		r.fail_at(at, what + " checksum mismatch");
	return raw;
}

// The start block after its magic (docs/formats/overlay.md): checked whole
// before any of it is believed. Returns its raw bytes: u64 device state
// length, the device state, u64 pages, the bitmap.
template <class ReadInto>
std::vector<uint8_t> read_start_block(qemu::Reader &r, const OverlayHeader &h, ReadInto &read_into) {
	uint64_t at = r.offset() - 8;
	uint64_t bitmap = (h.total_pages + 7) / 8;
	std::vector<uint8_t> raw = get_block(r, read_into, 16 + bitmap, 16 + kMaxDeviceState + bitmap, "start block");
	uint64_t raw_len = raw.size();
	uint64_t ds_len = get64(raw.data());
	if (ds_len != raw_len - 16 - bitmap)
		r.fail_at(at, "start block: a device state of " + std::to_string(ds_len) + " bytes does not fit its " +
		                  std::to_string(raw_len) + " bytes");
	if (get64(raw.data() + 8 + ds_len) != h.total_pages)
		r.fail_at(at, "start block: its page count is not the header's " + std::to_string(h.total_pages));
	if (h.total_pages % 8 && raw.back() >> (h.total_pages % 8))
		r.fail_at(at, "start block: pages named beyond the last");
	return raw;
}

} // namespace

OverlayCounts read_overlay(qemu::Reader &r, OverlaySink &sink, const BaseBounds &bounds, unsigned threads,
                           ReadStats *stats_out) {
	OverlayCounts c;
	ReadStats local_stats;
	ReadStats &stats = stats_out ? *stats_out : local_stats;
	// Declared lengths (header, segment body, device state) are allocated
	// as their bytes arrive, never ahead: a truncated or lying file costs
	// what it holds.
	auto read_into = [&](std::vector<uint8_t> &dst, size_t n, const char *field) {
		dst.clear();
		for (size_t got = 0; got < n;) {
			size_t k = std::min<size_t>(n - got, 1u << 19);
			const uint8_t *b = r.bytes(k, field);
			dst.insert(dst.end(), b, b + k);
			got += k;
		}
	};
	XXH64_state_t *hs = XXH64_createState();
	std::unique_ptr<XXH64_state_t, decltype(&XXH64_freeState)> hs_owner(hs, XXH64_freeState);

	const uint8_t *m = r.bytes(8, "overlay magic");
	if (memcmp(m, kMagic, 8) != 0)
		r.fail_at(0, "not a libcloudlet overlay (bad magic)");
	std::vector<uint8_t> head;
	append(head, m, 8);
	const uint8_t *vl = r.bytes(8, "overlay version and header length");
	append(head, vl, 8);
	uint32_t version = get32(vl), hlen = get32(vl + 4);
	if (version < kMinVersion || version > kOverlayVersion)
		fail(CLOUDLET_E_UNSUPPORTED, "overlay format version " + std::to_string(version) + " (this library reads 1 and 2)");
	c.version = version;
	if (hlen == 0 || hlen > kMaxHeader)
		r.fail("overlay header length " + std::to_string(hlen) + " is out of range");
	std::vector<uint8_t> json;
	read_into(json, hlen, "overlay header");
	append(head, json.data(), json.size());
	uint64_t header_hash = XXH64(head.data(), head.size(), 0);
	OverlayHeader h = parse_header(std::string(json.begin(), json.end()), "overlay header");
	if (bounds.known && bounds.disk_bytes.size() != h.disks.size())
		fail(CLOUDLET_E_CORRUPT, "the overlay has " + std::to_string(h.disks.size()) + " disks, its base " +
		                             std::to_string(bounds.disk_bytes.size()));
	if (bounds.known)
		check_launch_memory(h, bounds.memory_pages, "overlay header");
	sink.on_header(h);

	// Chunk keys named so far, and those of stored chunks (what SELF and
	// SHIFT_XOR may refer to).
	std::unordered_set<uint64_t> named, data_seen;
	chunk::RecordBounds rules = record_bounds(h, bounds);
	rules.stored = [&](uint64_t ref) { return data_seen.count(ref) != 0; };
	struct Seen {
		uint64_t offset, bytes, hash;
	};
	std::vector<Seen> segs;
	// A segment read from the input, being checked and decompressed (on a
	// worker thread when threads > 1), handed on strictly in file order.
	struct Pending {
		uint64_t offset = 0, bytes = 0, hash = 0;
		uint32_t n = 0, stored = 0;
		std::future<std::vector<uint8_t>> raw;
	};
	std::deque<Pending> pending;
	// Version 2: disk segments, the start block, memory segments.
	bool started = false;
	std::vector<uint8_t> named_pages; // version 2: the start block's bitmap
	auto deliver_oldest = [&]() {
		Pending p = std::move(pending.front());
		pending.pop_front();
		std::vector<uint8_t> raw = p.raw.get(); // rethrows a checksum or codec failure
		uint64_t seg_off = p.offset;
		uint32_t n = p.n;
		uint64_t rec_bytes = uint64_t(n) * kRecord;
		const uint8_t *recs = raw.data();
		const uint8_t *payload = raw.data() + rec_bytes;
		uint64_t raw_payload = raw.size() - rec_bytes;
		// Validate every record before handing any on.
		size_t slots = 0;
		std::vector<ChunkRecord> list(n);
		for (uint32_t i = 0; i < n; i++) {
			const uint8_t *q = recs + size_t(i) * kRecord;
			ChunkRecord rec{q[0], static_cast<ChunkKind>(q[1]), get64(q + 8), get64(q + 16), chunk::get_shift(q)};
			auto bad = [&](const std::string &why) {
				r.fail_at(seg_off + 8 + kSegHeader + uint64_t(i) * kRecord, "record " + std::to_string(i) + ": " + why);
			};
			if (!chunk::reserved_bytes_clear(q))
				bad("reserved bytes are not zero");
			if (std::string why = chunk::record_problem(rec, rules); !why.empty())
				bad(why);
			if (version >= 2) {
				bool memory = rec.space == chunk::kMemorySpace;
				if (memory != started)
					bad(memory ? "a memory chunk before the start block" : "a disk chunk after the start block");
				if (memory && !(named_pages[rec.chunk / 8] >> (rec.chunk % 8) & 1))
					bad("memory page " + std::to_string(rec.chunk) + " is not in the start block's set");
			}
			uint64_t key = chunk::pack_ref(rec.space, rec.chunk);
			if (!named.insert(key).second)
				bad("chunk " + std::to_string(rec.chunk) + " is named twice");
			if (chunk::stores_payload(rec.kind)) {
				slots++;
				data_seen.insert(key);
			}
			list[i] = rec;
		}
		if (slots * kChunkSize != raw_payload)
			r.fail_at(seg_off + 8,
			          std::to_string(slots) + " data records for " + std::to_string(raw_payload) + " payload bytes");
		size_t slot = 0;
		for (const auto &rec : list) {
			c.records[static_cast<int>(rec.kind)]++;
			(rec.space == chunk::kMemorySpace ? c.memory_records : c.disk_records)++;
			sink.on_chunk(rec, chunk::stores_payload(rec.kind) ? payload + kChunkSize * slot++ : nullptr);
		}
		c.segments++;
		c.payload_bytes += raw_payload;
		c.stored_bytes += p.stored;
		segs.push_back({seg_off, p.bytes, p.hash});
	};
	for (;;) {
		uint64_t seg_off = r.offset();
		const uint8_t *mm = r.bytes(8, "segment or footer magic");
		if (memcmp(mm, kEndMagic, 8) == 0)
			break;
		if (version >= 2 && !started && memcmp(mm, kStartMagic, 8) == 0) {
			while (!pending.empty()) // every disk chunk first
				deliver_oldest();
			std::vector<uint8_t> raw = read_start_block(r, h, read_into);
			uint64_t ds_len = get64(raw.data());
			std::vector<uint8_t> device_state(raw.begin() + 8, raw.begin() + 8 + static_cast<std::ptrdiff_t>(ds_len));
			named_pages.assign(raw.begin() + 16 + static_cast<std::ptrdiff_t>(ds_len), raw.end());
			started = true;
			c.device_state_bytes = device_state.size();
			sink.on_device_state(device_state);
			sink.on_start(named_pages);
			continue;
		}
		if (memcmp(mm, kSegMagic, 8) != 0)
			r.fail_at(seg_off, "expected a segment or the footer");
		const uint8_t *sh = r.bytes(kSegHeader, "segment header");
		uint32_t codec = get32(sh), n = get32(sh + 4), rawlen = get32(sh + 8), st = get32(sh + 12);
		uint64_t hash = get64(sh + 16), raw_hash = get64(sh + 24);
		if (codec > 2)
			r.fail_at(seg_off + 8, "unknown codec " + std::to_string(codec));
		uint64_t rec_bytes = uint64_t(n) * kRecord;
		if (n == 0 || n > kMaxSegmentRecords || rawlen < rec_bytes || rawlen - rec_bytes > kMaxSegmentPayload ||
		    (rawlen - rec_bytes) % kChunkSize || st > rawlen + (1u << 20) || get64(sh + 32) != 0)
			r.fail_at(seg_off + 8, "segment header out of range (" + std::to_string(n) + " records, " +
			                           std::to_string(rawlen) + " bytes, " + std::to_string(st) + " stored)");
		std::vector<uint8_t> stored;
		read_into(stored, st, "segment body");
		Pending p;
		p.offset = seg_off;
		p.bytes = r.offset() - seg_off;
		p.hash = hash;
		p.n = n;
		p.stored = st;
		auto job = [&r, seg_off, codec, rawlen, hash, raw_hash, stored = std::move(stored), &stats]() {
			auto t0 = std::chrono::steady_clock::now();
			if (XXH64(stored.data(), stored.size(), 0) != hash)
				r.fail_at(seg_off, "segment checksum mismatch");
			chunk::check_stored_block(static_cast<chunk::Codec>(codec), stored.data(), stored.size(), rawlen,
			                          "overlay segment at offset " + std::to_string(seg_off));
			std::vector<uint8_t> raw(rawlen);
			chunk::decompress_block(static_cast<chunk::Codec>(codec), stored.data(), stored.size(), raw.data(),
			                        rawlen, "overlay segment at offset " + std::to_string(seg_off));
			if (XXH64(raw.data(), raw.size(), 0) != raw_hash)
				r.fail_at(seg_off, "segment checksum mismatch after decompression");
			stats.add_decode(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
			return raw;
		};
		if (threads <= 1) {
			std::promise<std::vector<uint8_t>> pr;
			try {
				pr.set_value(job());
			} catch (...) {
				pr.set_exception(std::current_exception());
			}
			p.raw = pr.get_future();
		} else {
			p.raw = std::async(std::launch::async, std::move(job));
		}
		pending.push_back(std::move(p));
		// A VM that runs on what arrives (early start) gets each memory
		// segment as soon as it is here, not behind the next one's download.
		unsigned ahead = started && sink.prompt() ? 1u : std::max(1u, threads);
		while (pending.size() >= ahead)
			deliver_oldest();
	}
	while (!pending.empty())
		deliver_oldest();
	if (version >= 2 && !started)
		r.fail("the footer comes before the start block");
	if (version >= 2) {
		uint64_t set = 0;
		for (uint8_t b : named_pages)
			set += static_cast<uint64_t>(__builtin_popcount(b));
		if (set != c.memory_records)
			r.fail("the start block names " + std::to_string(set) + " memory pages, the segments " +
			       std::to_string(c.memory_records));
	}
	uint64_t footer_off = r.offset() - 8;
	uint32_t count = get32(r.bytes(4, "segment count"));
	if (count != segs.size())
		r.fail("the footer lists " + std::to_string(count) + " segments, the file has " + std::to_string(segs.size()));
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = r.bytes(24, "segment table entry");
		if (get64(e) != segs[i].offset || get64(e + 8) != segs[i].bytes || get64(e + 16) != segs[i].hash)
			r.fail("segment table entry " + std::to_string(i) + " does not match segment at " +
			       std::to_string(segs[i].offset));
	}
	std::vector<uint8_t> device_state = get_block(r, read_into, 0, kMaxDeviceState, "device state");
	if (version >= 2 && !device_state.empty())
		r.fail("a version 2 footer with a device state (it belongs in the start block)");
	const uint8_t *t = r.bytes(24, "footer trailer");
	if (get64(t) != header_hash)
		r.fail("header checksum mismatch");
	if (get64(t + 8) != footer_off)
		r.fail("footer offset mismatch");
	if (memcmp(t + 16, kEofMagic, 8) != 0)
		r.fail("end magic missing");
	if (!r.at_end())
		r.fail("data after the end of the overlay");
	c.file_bytes = r.offset();
	if (version == 1) {
		c.device_state_bytes = device_state.size();
		sink.on_device_state(device_state);
	}
	return c;
}

} // namespace cloudlet::format
