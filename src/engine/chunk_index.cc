#include "engine/chunk_index.h"

#include "chunk/sha256.h"
#include "image_file.h"
#include "util/error.h"
#include "util/fd_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace cloudlet::engine {

using chunk::kChunkSize;

namespace {

constexpr char kMagic[8] = {'C', 'L', 'T', 'I', 'D', 'X', 'v', '1'};
constexpr size_t kHeaderSize = 64;

void put_le64(uint8_t *p, uint64_t v) {
	for (int i = 0; i < 8; i++)
		p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_le32(uint8_t *p, uint32_t v) {
	for (int i = 0; i < 4; i++)
		p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t le64(const uint8_t *p) {
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
uint32_t le32(const uint8_t *p) {
	return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

} // namespace

Hash128 chunk_hash(const uint8_t *data, size_t n) {
	XXH128_hash_t h = XXH3_128bits(data, n);
	return {h.low64, h.high64};
}

const Hash128 &zero_chunk_hash() {
	static const Hash128 z = [] {
		static const uint8_t zeros[kChunkSize] = {};
		return chunk_hash(zeros);
	}();
	return z;
}

std::vector<Hash128> hash_chunks(uint64_t count, const std::function<const uint8_t *(uint64_t)> &chunk,
                                 unsigned threads) {
	std::vector<Hash128> out(count);
	const Hash128 zero = zero_chunk_hash();
	if (threads == 0)
		threads = 1;
	if (count < 4096)
		threads = 1;
	auto work = [&](uint64_t from, uint64_t to) {
		for (uint64_t i = from; i < to; i++) {
			const uint8_t *p = chunk(i);
			out[i] = p ? chunk_hash(p) : zero;
		}
	};
	std::vector<std::thread> pool;
	uint64_t per = (count + threads - 1) / threads;
	for (unsigned t = 1; t < threads; t++) {
		uint64_t from = std::min<uint64_t>(count, t * per), to = std::min<uint64_t>(count, from + per);
		pool.emplace_back(work, from, to);
	}
	work(0, std::min<uint64_t>(count, per));
	for (auto &th : pool)
		th.join();
	return out;
}

std::vector<Hash128> hash_range(const uint8_t *data, uint64_t size, unsigned threads) {
	uint64_t full = size / kChunkSize;
	uint64_t count = (size + kChunkSize - 1) / kChunkSize;
	std::vector<Hash128> out = hash_chunks(full, [&](uint64_t i) { return data + i * kChunkSize; }, threads);
	if (count > full) {
		uint8_t last[kChunkSize] = {};
		memcpy(last, data + full * kChunkSize, size - full * kChunkSize);
		out.push_back(chunk_hash(last));
	}
	return out;
}

uint64_t index_entries(IndexKind kind, uint64_t bytes) {
	if (kind == IndexKind::DiskSectors)
		return bytes < kChunkSize ? 0 : (bytes - kChunkSize) / kSectorStep + 1;
	return (bytes + kChunkSize - 1) / kChunkSize;
}

std::vector<Hash128> hash_sector_windows(const uint8_t *data, uint64_t size, unsigned threads) {
	return hash_chunks(
	    index_entries(IndexKind::DiskSectors, size), [&](uint64_t i) { return data + i * kSectorStep; }, threads);
}

namespace {

std::vector<uint8_t> index_header(const std::string &path, IndexKind kind, uint64_t source_bytes, uint64_t count) {
	std::vector<uint8_t> buf(kHeaderSize);
	memcpy(buf.data(), kMagic, 8);
	put_le32(&buf[8], 1);                         // format version
	put_le32(&buf[12], static_cast<uint32_t>(kind));
	put_le32(&buf[16], kChunkSize);
	put_le32(&buf[20], 1);                        // hash: XXH3-128
	put_le64(&buf[24], count);
	put_le64(&buf[32], source_bytes);
	if (index_entries(kind, source_bytes) != count)
		fail(CLOUDLET_E_INTERNAL, path + ": " + std::to_string(count) + " hashes for an index of " +
		                              std::to_string(index_entries(kind, source_bytes)));
	return buf;
}

} // namespace

std::string write_index(const std::string &path, IndexKind kind, uint64_t source_bytes,
                        const std::vector<Hash128> &hashes) {
	std::vector<uint8_t> buf = index_header(path, kind, source_bytes, hashes.size());
	buf.resize(kHeaderSize + hashes.size() * 16);
	for (size_t i = 0; i < hashes.size(); i++) {
		put_le64(&buf[kHeaderSize + 16 * i], hashes[i].lo);
		put_le64(&buf[kHeaderSize + 16 * i + 8], hashes[i].hi);
	}
	UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	if (!fd)
		fail_errno("cannot create " + path, errno);
	pwrite_all(fd.get(), buf.data(), buf.size(), 0, path);
	if (close(fd.release()) != 0) // where a deferred write error shows
		fail_errno("cannot write " + path, errno);
	return chunk::sha256_hex(buf.data(), buf.size());
}

IndexWriter::IndexWriter(const std::string &path, IndexKind kind, uint64_t source_bytes)
    : path_(path), count_(index_entries(kind, source_bytes)) {
	std::vector<uint8_t> header = index_header(path, kind, source_bytes, count_);
	fd_.reset(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	if (!fd_)
		fail_errno("cannot create " + path, errno);
	pwrite_all(fd_.get(), header.data(), header.size(), 0, path_);
}

void IndexWriter::put(uint64_t first, const Hash128 *hashes, size_t n) {
	if (first > count_ || n > count_ - first)
		fail(CLOUDLET_E_INTERNAL, path_ + ": entries " + std::to_string(first) + "+" + std::to_string(n) +
		                              " beyond " + std::to_string(count_));
	uint8_t buf[16 * 512];
	for (size_t i = 0; i < n;) {
		size_t k = std::min<size_t>(n - i, 512);
		for (size_t j = 0; j < k; j++) {
			put_le64(buf + 16 * j, hashes[i + j].lo);
			put_le64(buf + 16 * j + 8, hashes[i + j].hi);
		}
		pwrite_all(fd_.get(), buf, 16 * k, kHeaderSize + 16 * (first + i), path_);
		i += k;
	}
	written_ += n;
}

void IndexWriter::finish() {
	if (written_ != count_)
		fail(CLOUDLET_E_INTERNAL, path_ + ": " + std::to_string(written_.load()) + " of " + std::to_string(count_) +
		                              " index entries written");
	if (close(fd_.release()) != 0)
		fail_errno("cannot write " + path_, errno);
}

std::string index_disk_file(const std::string &disk, const std::string &idx4k, const std::string &idx512,
                            chunk::ScanOptions scan) {
	struct stat st;
	if (stat(disk.c_str(), &st) != 0)
		fail_errno("cannot stat " + disk, errno);
	uint64_t size = static_cast<uint64_t>(st.st_size);
	IndexWriter w4(idx4k, IndexKind::Disk, size), w512(idx512, IndexKind::DiskSectors, size);
	const Hash128 zero = zero_chunk_hash();
	scan.lookahead = kChunkSize - kSectorStep; // windows starting in a leaf's last 3.5 KiB end in the next
	scan.visit = [&](const chunk::LeafView &v) {
		thread_local std::vector<Hash128> h;
		// 4 KiB chunks; the last is zero-padded (the view is zero past the end).
		size_t n = (v.length + kChunkSize - 1) / kChunkSize;
		h.resize(n);
		for (size_t k = 0; k < n; k++) {
			size_t at = k * kChunkSize;
			h[k] = v.hole(at, at + kChunkSize) ? zero : chunk_hash(v.data + at);
		}
		w4.put(v.offset / kChunkSize, h.data(), n);
		// The windows that start in this leaf and end inside the file.
		uint64_t first = v.offset / kSectorStep;
		uint64_t last = std::min(w512.count(), (v.offset + v.length + kSectorStep - 1) / kSectorStep);
		if (last <= first)
			return;
		h.resize(static_cast<size_t>(last - first));
		for (uint64_t i = first; i < last; i++) {
			size_t at = static_cast<size_t>(i * kSectorStep - v.offset);
			h[i - first] = v.hole(at, at + kChunkSize) ? zero : chunk_hash(v.data + at);
		}
		w512.put(first, h.data(), h.size());
	};
	std::string digest = chunk::scan_file(disk, scan).digest;
	w4.finish();
	w512.finish();
	return digest;
}

std::string index_memory_image(const std::string &image, const std::string &idx, chunk::ScanOptions scan) {
	qemu::ImageFile img(image);
	const uint64_t slots = img.data_slots(), data_from = img.data_offset();
	const uint64_t data_to = data_from + slots * kChunkSize;
	const Hash128 zero = zero_chunk_hash();
	std::vector<Hash128> slot_hash(slots);
	scan.visit = [&](const chunk::LeafView &v) {
		// Leaves and the data region are both 4096-aligned.
		uint64_t from = std::max(v.offset, data_from), to = std::min(v.offset + v.length, data_to);
		for (uint64_t at = from; at < to; at += kChunkSize) {
			size_t rel = static_cast<size_t>(at - v.offset);
			slot_hash[(at - data_from) / kChunkSize] = v.hole(rel, rel + kChunkSize) ? zero : chunk_hash(v.data + rel);
		}
	};
	std::string digest = chunk::scan_file(image, scan).digest;
	uint64_t pages = img.stream_info().total_pages;
	IndexWriter w(idx, IndexKind::Memory, pages * kChunkSize);
	std::vector<Hash128> h;
	for (uint64_t p = 0; p < pages;) {
		size_t n = static_cast<size_t>(std::min<uint64_t>(pages - p, 4096));
		h.resize(n);
		for (size_t k = 0; k < n; k++) {
			uint64_t e = img.slot(p + k);
			h[k] = e ? slot_hash[e - 1] : zero;
		}
		w.put(p, h.data(), n);
		p += n;
	}
	w.finish();
	return digest;
}

IndexFile::IndexFile(const std::string &path) : file_(path) {
	const uint8_t *map = file_.data();
	size_t size = file_.size();
	auto bad = [&](const std::string &why) { fail(CLOUDLET_E_CORRUPT, path + ": " + why); };
	if (size < kHeaderSize)
		bad("index file of " + std::to_string(size) + " bytes has no header");
	if (memcmp(map, kMagic, 8) != 0)
		bad("not a libcloudlet index (bad magic at offset 0)");
	if (le32(map + 8) != 1)
		bad("index format version " + std::to_string(le32(map + 8)) + " is not 1");
	uint32_t kind = le32(map + 12);
	if (kind < 1 || kind > 3)
		bad("unknown index kind " + std::to_string(kind) + " at offset 12");
	kind_ = static_cast<IndexKind>(kind);
	if (le32(map + 16) != kChunkSize || le32(map + 20) != 1)
		bad("chunk size/hash kind at offset 16 are not 4096/XXH3-128");
	count_ = le64(map + 24);
	source_bytes_ = le64(map + 32);
	if (count_ > (size - kHeaderSize) / 16 || kHeaderSize + count_ * 16 != size)
		bad("index says " + std::to_string(count_) + " chunks but the file holds " +
		    std::to_string((size - kHeaderSize) / 16));
	if (index_entries(kind_, source_bytes_) != count_)
		bad("index covers " + std::to_string(source_bytes_) + " bytes but has " + std::to_string(count_) + " chunks");
}

Hash128 IndexFile::at(uint64_t i) const {
	if (i >= count_)
		fail(CLOUDLET_E_INVALID_ARG, file_.path() + ": chunk " + std::to_string(i) + " beyond " + std::to_string(count_));
	const uint8_t *p = file_.data() + kHeaderSize + 16 * i;
	return {le64(p), le64(p + 8)};
}

} // namespace cloudlet::engine
