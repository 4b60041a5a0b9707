// Chunk indexes: one 128-bit XXH3 hash per 4 KiB chunk of a memory image
// or disk, for fast lookup when overlays are computed against a base
// (docs/formats/base.md). XXH3 is for finding candidates; identity and
// tamper detection are SHA-256's job (chunk/sha256.h).
#pragma once

#include "chunk/chunk_record.h"
#include "chunk/content_digest.h"
#include "util/mapped_file.h"
#include "util/unique_fd.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cloudlet::engine {

struct Hash128 {
	uint64_t lo = 0, hi = 0;
	bool operator==(const Hash128 &o) const { return lo == o.lo && hi == o.hi; }
	bool operator!=(const Hash128 &o) const { return !(*this == o); }
};

Hash128 chunk_hash(const uint8_t *data, size_t n = chunk::kChunkSize);
const Hash128 &zero_chunk_hash();

// Memory and Disk: one entry per 4 KiB chunk (the last zero-padded).
// DiskSectors: one entry per 4 KiB window starting at every 512-byte offset
// that fits (file data of file systems with sub-4 KiB blocks sits on disk at
// such offsets; measured in docs/base-vms.md).
enum class IndexKind : uint32_t { Memory = 1, Disk = 2, DiskSectors = 3 };
constexpr size_t kSectorStep = 512;

// Number of entries an index of `kind` over `bytes` has.
uint64_t index_entries(IndexKind kind, uint64_t bytes);

// The DiskSectors index of a memory range, on `threads` threads.
std::vector<Hash128> hash_sector_windows(const uint8_t *data, uint64_t size, unsigned threads);

// Hashes `count` chunks, chunk i given by `chunk(i)` (null = all zero), on
// `threads` threads (contiguous ranges). `chunk` must be thread-safe.
std::vector<Hash128> hash_chunks(uint64_t count, const std::function<const uint8_t *(uint64_t)> &chunk,
                                 unsigned threads);

// Hashes a memory range split into 4 KiB chunks (the last one zero-padded).
std::vector<Hash128> hash_range(const uint8_t *data, uint64_t size, unsigned threads);

// Writes an index file (header + hashes); returns the file's SHA-256.
std::string write_index(const std::string &path, IndexKind kind, uint64_t source_bytes,
                        const std::vector<Hash128> &hashes);

// An index file written in pieces, in any order and from several threads
// (pwrite at each entry's place), so no index is ever held in memory.
// finish() checks that every entry was written exactly once in total count.
class IndexWriter {
public:
	IndexWriter(const std::string &path, IndexKind kind, uint64_t source_bytes); // creates, truncates
	uint64_t count() const { return count_; }
	// Entries [first, first + n). Thread-safe.
	void put(uint64_t first, const Hash128 *hashes, size_t n);
	void finish(); // throws CLOUDLET_E_INTERNAL unless count() entries were put

private:
	std::string path_;
	UniqueFd fd_;
	uint64_t count_ = 0;
	std::atomic<uint64_t> written_{0};
};

// One pass over a raw disk file (scan_file with `scan`'s threads and
// progress; holes are not read and hash as the zero chunk): writes both
// indexes, Disk and DiskSectors, as they are computed, and returns the
// disk's digest. Memory: a few MiB per thread, whatever the disk's size.
std::string index_disk_file(const std::string &disk, const std::string &idx4k, const std::string &idx512,
                            chunk::ScanOptions scan);

// One pass over a memory image (qemu/image_file.h): the Memory index, one
// entry per linear page, and the image's digest. Only the image's header
// and page index are mapped; memory: 16 bytes per page with data.
std::string index_memory_image(const std::string &image, const std::string &idx, chunk::ScanOptions scan);

// A read-only, mmap'ed index file, validated on open.
class IndexFile {
public:
	explicit IndexFile(const std::string &path);
	IndexFile(const IndexFile &) = delete;
	IndexFile &operator=(const IndexFile &) = delete;
	IndexKind kind() const { return kind_; }
	uint32_t step() const { return kind_ == IndexKind::DiskSectors ? kSectorStep : chunk::kChunkSize; }
	uint64_t count() const { return count_; }
	uint64_t source_bytes() const { return source_bytes_; }
	Hash128 at(uint64_t i) const; // bounds-checked
	// Lets go of the mapped pages read so far (MappedFile::drop_resident):
	// for an index read once into a table, they would stay in the RSS.
	void drop_resident() const { file_.drop_resident(); }

private:
	MappedFile file_;
	IndexKind kind_ = IndexKind::Memory;
	uint64_t count_ = 0, source_bytes_ = 0;
};

} // namespace cloudlet::engine
