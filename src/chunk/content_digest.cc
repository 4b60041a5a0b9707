#include "chunk/content_digest.h"

#include "util/error.h"
#include "util/fd_io.h"
#include "util/unique_fd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

namespace cloudlet::chunk {

namespace {

constexpr size_t kZeroBlock = 64 << 10;
const uint8_t kZeros[kZeroBlock] = {};
constexpr uint64_t kGroup = 8; // leaves a thread takes at once: 8 MiB read in order

void put_le64(uint8_t *p, uint64_t v) {
	for (int i = 0; i < 8; i++)
		p[i] = static_cast<uint8_t>(v >> (8 * i));
}

Sha256 &thread_sha() {
	thread_local Sha256 h;
	return h;
}

} // namespace

bool Leaf::operator==(const Leaf &o) const { return memcmp(b, o.b, sizeof b) == 0; }

bool all_zero(const uint8_t *p, size_t n) { return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0); }

const Leaf &zero_leaf() {
	static const Leaf z = [] {
		Sha256 h;
		for (size_t off = 0; off < kLeafSize; off += kZeroBlock)
			h.update(kZeros, kZeroBlock);
		Leaf l;
		h.digest(l.b);
		return l;
	}();
	return z;
}

Leaf leaf_hash(const uint8_t *p, size_t n) {
	if (all_zero(p, n))
		return zero_leaf();
	Leaf l;
	Sha256 &h = thread_sha();
	h.update(p, n);
	h.digest(l.b);
	return l;
}

namespace {

void root_start(Sha256 &h, uint64_t size) {
	uint8_t header[sizeof kDigestAlgorithm + 16];
	memcpy(header, kDigestAlgorithm, sizeof kDigestAlgorithm); // with its NUL
	put_le64(header + sizeof kDigestAlgorithm, kLeafSize);
	put_le64(header + sizeof kDigestAlgorithm + 8, size);
	h.update(header, sizeof header);
}

void leaf_count_check(uint64_t leaves, uint64_t size) {
	if (leaves != (size + kLeafSize - 1) / kLeafSize)
		fail(CLOUDLET_E_INTERNAL, std::to_string(leaves) + " leaves for a digest of " + std::to_string(size) +
		                              " bytes");
}

} // namespace

std::string root_digest(uint64_t size, const std::vector<Leaf> &leaves) {
	leaf_count_check(leaves.size(), size);
	Sha256 h;
	root_start(h, size);
	for (const auto &l : leaves)
		h.update(l.b, sizeof l.b);
	return h.hex();
}

// ---------------------------------------------------------------- builder

void DigestBuilder::hash_zeros(uint64_t n) {
	while (n) {
		size_t k = static_cast<size_t>(std::min<uint64_t>(n, kZeroBlock));
		sha_.update(kZeros, k);
		n -= k;
	}
}

void DigestBuilder::close_leaf() {
	if (data_) {
		Leaf l;
		sha_.digest(l.b);
		leaves_.emplace_back(l, 1);
	} else if (!leaves_.empty() && leaves_.back().first == zero_leaf()) { // data leaves never hash to it
		leaves_.back().second++;
	} else {
		leaves_.emplace_back(zero_leaf(), 1);
	}
	fill_ = 0;
	data_ = false;
}

void DigestBuilder::update(const uint8_t *p, size_t n) {
	while (n) {
		size_t k = std::min(n, kLeafSize - fill_);
		if (data_) {
			sha_.update(p, k);
		} else if (!all_zero(p, k)) {
			hash_zeros(fill_); // the leaf's zeros so far, then its first data
			sha_.update(p, k);
			data_ = true;
		}
		fill_ += k;
		size_ += k;
		p += k;
		n -= k;
		if (fill_ == kLeafSize)
			close_leaf();
	}
}

void DigestBuilder::zeros(uint64_t n) {
	while (n) {
		if (fill_ == 0 && n >= kLeafSize) { // whole zero leaves: nothing to hash
			uint64_t whole = n / kLeafSize;
			if (!leaves_.empty() && leaves_.back().first == zero_leaf())
				leaves_.back().second += whole;
			else
				leaves_.emplace_back(zero_leaf(), whole);
			size_ += whole * kLeafSize;
			n -= whole * kLeafSize;
			continue;
		}
		size_t k = static_cast<size_t>(std::min<uint64_t>(n, kLeafSize - fill_));
		if (data_)
			hash_zeros(k);
		fill_ += k;
		size_ += k;
		n -= k;
		if (fill_ == kLeafSize)
			close_leaf();
	}
}

std::string DigestBuilder::finish() {
	if (fill_)
		close_leaf();
	uint64_t count = 0;
	for (const auto &[l, n] : leaves_)
		count += n;
	leaf_count_check(count, size_);
	Sha256 h;
	root_start(h, size_);
	static_assert(sizeof(Leaf) == 32);
	std::vector<Leaf> run; // a run of zero leaves, fed 64 KiB at a time
	for (const auto &[l, n] : leaves_) {
		if (n == 1) {
			h.update(l.b, sizeof l.b);
			continue;
		}
		run.assign(std::min<uint64_t>(n, 2048), l);
		for (uint64_t left = n; left;) {
			uint64_t k = std::min<uint64_t>(left, run.size());
			h.update(run.data(), k * sizeof(Leaf));
			left -= k;
		}
	}
	return h.hex();
}

// ---------------------------------------------------------------- scan

bool LeafView::hole(size_t from, size_t to) const {
	// first extent ending after `from`
	auto it = std::upper_bound(extents.begin(), extents.end(), from,
	                           [](size_t v, const std::pair<size_t, size_t> &e) { return v < e.second; });
	return it == extents.end() || it->first >= to;
}

ScanResult scan_file(const std::string &path, const ScanOptions &o) {
	UniqueFd file = open_for_reading(path);
	int fd = file.get();
	struct stat st;
	if (fstat(fd, &st) != 0)
		fail_errno("cannot stat " + path, errno);
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	ScanResult r;
	r.size = static_cast<uint64_t>(st.st_size);
	DataExtents ext(fd, r.size, path);
	r.data_bytes = ext.data_bytes();
	uint64_t nleaves = (r.size + kLeafSize - 1) / kLeafSize;
	std::vector<Leaf> leaves(nleaves);

	std::atomic<uint64_t> next{0}, done{0};
	std::atomic<bool> stop{false};
	std::exception_ptr error;
	std::mutex mu;
	auto work = [&] {
		try {
			std::vector<uint8_t> buf(kLeafSize + o.lookahead);
			bool buf_zero = false; // buf holds zeros only
			LeafView v;
			for (;;) {
				uint64_t first = next.fetch_add(kGroup);
				if (first >= nleaves || stop)
					break;
				for (uint64_t i = first; i < std::min(nleaves, first + kGroup) && !stop; i++) {
					v.index = i;
					v.offset = i * kLeafSize;
					v.length = static_cast<size_t>(std::min<uint64_t>(kLeafSize, r.size - v.offset));
					uint64_t end = std::min<uint64_t>(r.size, v.offset + v.length + o.lookahead);
					v.extra = static_cast<size_t>(end - v.offset - v.length);
					v.extents.clear();
					for (const auto &[a, b] : ext.data_in(v.offset, end))
						v.extents.push_back({static_cast<size_t>(a - v.offset), static_cast<size_t>(b - v.offset)});
					if (v.extents.empty()) {
						if (!buf_zero)
							memset(buf.data(), 0, buf.size());
						buf_zero = true;
					} else {
						// Data extents are read, the gaps between them zeroed.
						size_t at = 0;
						for (const auto &[a, b] : v.extents) {
							memset(buf.data() + at, 0, a - at);
							pread_full(fd, buf.data() + a, b - a, v.offset + a, path);
							at = b;
						}
						memset(buf.data() + at, 0, buf.size() - at);
						buf_zero = false;
					}
					v.data = buf.data();
					leaves[i] = v.hole(0, v.length) ? zero_leaf() : leaf_hash(buf.data(), v.length);
					if (o.visit)
						o.visit(v);
					uint64_t d = done.fetch_add(v.length) + v.length;
					if (o.progress && (i % 16 == 15 || d == r.size))
						o.progress->report(o.phase, o.progress_base + d, o.progress_total ? o.progress_total : r.size);
				}
			}
		} catch (...) {
			std::lock_guard<std::mutex> g(mu);
			if (!error)
				error = std::current_exception();
			stop = true;
		}
	};
	unsigned threads = std::max(1u, o.threads);
	threads = static_cast<unsigned>(std::min<uint64_t>(threads, (nleaves + kGroup - 1) / kGroup));
	std::vector<std::thread> pool;
	for (unsigned t = 1; t < threads; t++)
		pool.emplace_back(work);
	work();
	for (auto &t : pool)
		t.join();
	if (error)
		std::rethrow_exception(error);
	r.digest = root_digest(r.size, leaves);
	return r;
}

std::string digest_file(const std::string &path, unsigned threads, uint64_t *size, Progress *progress) {
	ScanOptions o;
	o.threads = threads;
	o.progress = progress;
	ScanResult r = scan_file(path, o);
	if (size)
		*size = r.size;
	return r.digest;
}

} // namespace cloudlet::chunk
