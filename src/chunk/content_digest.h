// The content digest of a base's parts (docs/formats/base.md, "Part
// digest"): a SHA-256 hash tree over 1 MiB leaves in which every all-zero
// leaf -- a hole or written zeros -- has one constant hash. The digest is a
// function of the content alone, holes are never read, and the leaves of one
// file are hashed on several cores. Base create, verification, export and
// import all compute it here.
//
// scan_file is the one streaming pass over a part: bounded buffers (pread,
// no mapping), holes skipped (SEEK_DATA/SEEK_HOLE), leaves spread over the
// threads, and a visitor per leaf that can build the part's chunk indexes
// from the same bytes.
#pragma once

#include "chunk/sha256.h"
#include "util/progress.h"
#include "util/sparse_file.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace cloudlet::chunk {

constexpr size_t kLeafSize = 1 << 20;
// The name in the digest's header and in the manifest ("digest").
constexpr char kDigestAlgorithm[] = "cloudlet-sha256-tree";

struct Leaf {
	uint8_t b[32] = {};
	bool operator==(const Leaf &o) const;
};

bool all_zero(const uint8_t *p, size_t n);
// SHA-256 of kLeafSize zero bytes: the hash of every all-zero leaf, also a
// short last one (the file size in the header tells how long it is).
const Leaf &zero_leaf();
// zero_leaf() if the n bytes are all zero, else their SHA-256.
Leaf leaf_hash(const uint8_t *p, size_t n);
// SHA-256(name, NUL, u64 LE leaf size, u64 LE size, leaf 0, leaf 1, ...),
// lower-case hex. `leaves` must hold ceil(size / kLeafSize) leaves.
std::string root_digest(uint64_t size, const std::vector<Leaf> &leaves);

// The digest of bytes given in order. zeros(n) stands for n zero bytes
// (a hole, a zero block of a package) and costs nothing unless the leaf it
// falls into also holds data. Memory: 32 bytes per MiB of data; a run of
// zero leaves, however long, is one count (a package's declared size never
// buys memory with one byte per zero MiB).
class DigestBuilder {
public:
	void update(const uint8_t *p, size_t n);
	void zeros(uint64_t n);
	uint64_t size() const { return size_; }
	std::string finish(); // hex; the builder is spent

private:
	void close_leaf();
	void hash_zeros(uint64_t n);
	Sha256 sha_;
	// The leaves so far: each a data leaf's hash, or zero_leaf() with a
	// count for a run of zero leaves.
	std::vector<std::pair<Leaf, uint64_t>> leaves_;
	uint64_t size_ = 0;
	size_t fill_ = 0;   // bytes of the current leaf so far
	bool data_ = false; // the current leaf has a non-zero byte; its bytes are in sha_
};

// One leaf of a file as scan_file hands it to a visitor (on any thread).
struct LeafView {
	uint64_t index = 0, offset = 0; // leaf number, its first byte in the file
	size_t length = 0;              // bytes of the leaf (the last may be short)
	size_t extra = 0;               // bytes of the file after the leaf present in data (<= lookahead)
	// length + lookahead bytes: the file, with zeros in holes and past its end
	const uint8_t *data = nullptr;
	// True if [offset + from, offset + to) is a hole (zeros, never read):
	// its chunks need no hashing.
	bool hole(size_t from, size_t to) const;
	// the data extents within the leaf and its lookahead, relative to offset
	std::vector<std::pair<size_t, size_t>> extents;
};

struct ScanOptions {
	unsigned threads = 1;
	size_t lookahead = 0; // bytes after each leaf a visitor needs to see
	std::function<void(const LeafView &)> visit;
	// Reports (phase, progress_base + bytes done, progress_total or the file
	// size); may cancel.
	Progress *progress = nullptr;
	std::string phase = "hash";
	uint64_t progress_base = 0, progress_total = 0;
};

// Options for a scan that is one step of a longer operation: `threads`,
// progress reported as `phase` from `done` of `total` bytes.
inline ScanOptions scan_step(unsigned threads, Progress &progress, std::string phase, uint64_t done, uint64_t total) {
	ScanOptions o;
	o.threads = threads;
	o.progress = &progress;
	o.phase = std::move(phase);
	o.progress_base = done;
	o.progress_total = total;
	return o;
}

struct ScanResult {
	std::string digest;
	uint64_t size = 0, data_bytes = 0; // apparent size; bytes in data extents (read)
};

// Reads the file once: its digest, and `visit` for every leaf (holes
// included, in no particular order, concurrently). Exceptions of the
// visitor or the progress callback stop the scan and are rethrown.
ScanResult scan_file(const std::string &path, const ScanOptions &o);

// The digest of a file (scan_file without a visitor).
std::string digest_file(const std::string &path, unsigned threads, uint64_t *size = nullptr,
                        Progress *progress = nullptr);

} // namespace cloudlet::chunk
