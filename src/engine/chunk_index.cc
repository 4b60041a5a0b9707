#include "engine/chunk_index.h"

#include "engine/sha256.h"
#include "util/error.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace cloudlet::engine {

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

std::string write_index(const std::string &path, IndexKind kind, uint64_t source_bytes,
                        const std::vector<Hash128> &hashes) {
	std::vector<uint8_t> buf(kHeaderSize + hashes.size() * 16);
	memcpy(buf.data(), kMagic, 8);
	put_le32(&buf[8], 1);                         // format version
	put_le32(&buf[12], static_cast<uint32_t>(kind));
	put_le32(&buf[16], kChunkSize);
	put_le32(&buf[20], 1);                        // hash: XXH3-128
	put_le64(&buf[24], hashes.size());
	put_le64(&buf[32], source_bytes);
	if (index_entries(kind, source_bytes) != hashes.size())
		fail(CLOUDLET_E_INTERNAL, path + ": " + std::to_string(hashes.size()) + " hashes for an index of " +
		                              std::to_string(index_entries(kind, source_bytes)));
	for (size_t i = 0; i < hashes.size(); i++) {
		put_le64(&buf[kHeaderSize + 16 * i], hashes[i].lo);
		put_le64(&buf[kHeaderSize + 16 * i + 8], hashes[i].hi);
	}
	int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_errno("cannot create " + path, errno);
	for (size_t off = 0; off < buf.size();) {
		ssize_t n = write(fd, buf.data() + off, buf.size() - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			fail_errno("cannot write " + path, e);
		}
		off += static_cast<size_t>(n);
	}
	if (close(fd) != 0)
		fail_errno("cannot write " + path, errno);
	return sha256_hex(buf.data(), buf.size());
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
