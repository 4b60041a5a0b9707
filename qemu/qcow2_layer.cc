#include "qcow2_layer.h"

#include "util/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace cloudlet::qemu {

namespace {

// Our chunks are 4 KiB and qcow2 allocates whole clusters: with 4 KiB
// clusters every changed chunk is exactly one cluster and everything else
// stays in the backing file.
constexpr unsigned kClusterBits = 12;
constexpr uint64_t kClusterSize = uint64_t(1) << kClusterBits;
constexpr uint64_t kL2Entries = kClusterSize / 8;
constexpr unsigned kRefcountOrder = 4;                                  // 16-bit refcounts
constexpr uint64_t kRefblockEntries = kClusterSize * 8 / (1u << kRefcountOrder); // 2048
constexpr uint64_t kCopied = uint64_t(1) << 63;  // L1/L2: refcount is exactly 1
constexpr uint64_t kZeroFlag = 1;                // L2: reads as zeros (v3)
constexpr uint32_t kHeaderLength = 104;          // v3 header without compression_type
constexpr uint32_t kExtBackingFormat = 0xe2792aca;
// QEMU's implementation limits: a 32 MiB L1 table and an 8 MiB refcount
// table (8 TiB of guest disk / of image file with 4 KiB clusters). A bigger
// image would be valid qcow2 that QEMU refuses to open.
constexpr uint64_t kMaxL1Entries = (32u << 20) / 8;
constexpr uint64_t kMaxReftableClusters = (8u << 20) / kClusterSize;
constexpr size_t kMaxBackingName = 1023;
constexpr size_t kMaxBackingFormat = 15; // QEMU keeps it in a 16-byte string
constexpr size_t kBufferSize = 1 << 20;

uint64_t div_up(uint64_t a, uint64_t b) {
	return (a + b - 1) / b;
}

void put_be(uint8_t *p, uint64_t v, unsigned bytes) {
	for (unsigned i = 0; i < bytes; i++)
		p[i] = static_cast<uint8_t>(v >> (8 * (bytes - 1 - i)));
}

void pwrite_all(int fd, const uint8_t *data, size_t n, uint64_t off, const std::string &path) {
	while (n > 0) {
		ssize_t w = pwrite(fd, data, n, static_cast<off_t>(off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			fail_errno("cannot write " + path, errno);
		data += w;
		n -= static_cast<size_t>(w);
		off += static_cast<uint64_t>(w);
	}
}

// Refused before the file is created, so a bad call leaves nothing behind.
void check_arguments(const std::string &path, uint64_t virtual_size, const std::string &backing_file,
                     const std::string &backing_format) {
	auto bad = [&](const std::string &why) { fail(CLOUDLET_E_INVALID_ARG, path + ": " + why); };
	if (virtual_size == 0 || virtual_size % 512)
		bad("virtual size " + std::to_string(virtual_size) + " is not a positive multiple of 512");
	if (div_up(virtual_size, kClusterSize * kL2Entries) > kMaxL1Entries)
		bad("virtual size " + std::to_string(virtual_size) + " is above QEMU's limit for 4 KiB clusters (8 TiB)");
	// A relative name would be resolved against the image's directory.
	if (backing_file.empty() || backing_file[0] != '/' || backing_file.size() > kMaxBackingName ||
	    backing_file.find('\0') != std::string::npos)
		bad("backing file must be an absolute path of at most 1023 bytes");
	if (backing_format.empty() || backing_format.size() > kMaxBackingFormat ||
	    backing_format.find('\0') != std::string::npos)
		bad("backing format '" + backing_format + "' must be 1 to 15 bytes");
}

} // namespace

Qcow2LayerWriter::Qcow2LayerWriter(const std::string &path, uint64_t virtual_size, const std::string &backing_file,
                                   const std::string &backing_format, bool replace)
    : replace_(replace), path_(path), virtual_size_(virtual_size), chunks_(div_up(virtual_size, kClusterSize)),
      backing_file_(backing_file), backing_format_(backing_format), buf_offset_(kClusterSize) {
	check_arguments(path, virtual_size, backing_file, backing_format);
	l2_.resize(div_up(chunks_, kL2Entries));
	buf_.reserve(kBufferSize);
	fd_ = open(path.c_str(), replace ? O_WRONLY | O_TRUNC | O_CLOEXEC : O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd_ < 0) {
		if (errno == EEXIST)
			fail(CLOUDLET_E_EXISTS, path + " already exists");
		fail_errno("cannot create " + path, errno);
	}
}

Qcow2LayerWriter::~Qcow2LayerWriter() {
	if (fd_ >= 0)
		close(fd_);
	// Without its header the file is not an image; nobody should find it.
	if (!finished_ && !replace_)
		unlink(path_.c_str());
}

void Qcow2LayerWriter::check_open(const char *what) const {
	if (finished_ || fd_ < 0)
		fail(CLOUDLET_E_INVALID_ARG, path_ + ": " + what + " after finish()");
	if (broken_)
		fail(CLOUDLET_E_IO, path_ + ": " + what + " after a failed write");
}

uint64_t &Qcow2LayerWriter::claim(uint64_t index, const char *what) {
	check_open(what);
	if (index >= chunks_)
		fail(CLOUDLET_E_INVALID_ARG, path_ + ": chunk " + std::to_string(index) + " is beyond the virtual size (" +
		                                 std::to_string(chunks_) + " chunks)");
	auto &table = l2_[index / kL2Entries];
	if (!table)
		table = std::make_unique<uint64_t[]>(kL2Entries); // zeroed: unallocated
	uint64_t &entry = table[index % kL2Entries];
	if (entry != 0)
		fail(CLOUDLET_E_INVALID_ARG, path_ + ": chunk " + std::to_string(index) + " was already written");
	return entry;
}

void Qcow2LayerWriter::write_chunk(uint64_t index, const uint8_t *data) {
	if (!data)
		fail(CLOUDLET_E_INVALID_ARG, path_ + ": null data for chunk " + std::to_string(index));
	uint64_t &entry = claim(index, "write_chunk");
	// Data clusters follow the header cluster in arrival order.
	uint64_t host = (1 + data_chunks_) * kClusterSize;
	append(data, kClusterSize);
	entry = host | kCopied;
	data_chunks_++;
}

void Qcow2LayerWriter::zero_chunk(uint64_t index) {
	claim(index, "zero_chunk") = kZeroFlag; // no host cluster, so not COPIED
	zero_chunks_++;
}

uint64_t Qcow2LayerWriter::data_chunks() const {
	return data_chunks_;
}

void Qcow2LayerWriter::append(const uint8_t *data, size_t n) {
	while (n > 0) {
		if (buf_.size() == kBufferSize)
			flush();
		size_t k = std::min(n, kBufferSize - buf_.size());
		buf_.insert(buf_.end(), data, data + k);
		data += k;
		n -= k;
	}
}

void Qcow2LayerWriter::flush() {
	// A failed write leaves a hole we cannot account for: no more writes.
	broken_ = true;
	pwrite_all(fd_, buf_.data(), buf_.size(), buf_offset_, path_);
	broken_ = false;
	buf_offset_ += buf_.size();
	buf_.clear();
}

// Appends `n` entries of `width` bytes, big-endian, value(i) for entry i,
// zero-padded to whole clusters.
template <typename F>
void Qcow2LayerWriter::append_table(uint64_t n, unsigned width, F value) {
	uint8_t cluster[kClusterSize];
	const uint64_t per_cluster = kClusterSize / width;
	for (uint64_t first = 0; first < n; first += per_cluster) {
		std::fill(cluster, cluster + kClusterSize, 0);
		uint64_t end = std::min(n, first + per_cluster);
		for (uint64_t i = first; i < end; i++)
			put_be(cluster + (i - first) * width, value(i), width);
		append(cluster, kClusterSize);
	}
}

uint64_t Qcow2LayerWriter::finish() {
	check_open("finish");
	// Cluster numbers of everything after the data, in file order.
	const uint64_t l2_first = 1 + data_chunks_;
	uint64_t l2_count = 0;
	for (const auto &table : l2_)
		l2_count += table != nullptr;
	const uint64_t l1_entries = l2_.size();
	const uint64_t l1_first = l2_first + l2_count;
	const uint64_t refblock_first = l1_first + div_up(l1_entries * 8, kClusterSize);
	// Refcount blocks and the table count themselves too: grow both until
	// they cover every cluster including their own.
	uint64_t refblocks = 0, reftable_clusters = 0, total = 0;
	for (;;) {
		total = refblock_first + refblocks + reftable_clusters;
		uint64_t b = div_up(total, kRefblockEntries), t = div_up(b * 8, kClusterSize);
		if (b == refblocks && t == reftable_clusters)
			break;
		refblocks = b;
		reftable_clusters = t;
	}
	if (reftable_clusters > kMaxReftableClusters)
		fail(CLOUDLET_E_UNSUPPORTED, path_ + ": image of " + std::to_string(total) +
		                                 " clusters exceeds QEMU's refcount table limit");
	const uint64_t reftable_first = refblock_first + refblocks;

	for (const auto &table : l2_)
		if (table)
			append_table(kL2Entries, 8, [&](uint64_t i) { return table[i]; });
	// L2 tables were laid out in L1 order, so the i-th present one is at l2_first + i.
	uint64_t next_l2 = l2_first;
	append_table(l1_entries, 8,
	             [&](uint64_t i) { return l2_[i] ? (next_l2++ * kClusterSize) | kCopied : uint64_t(0); });
	append_table(refblocks * kRefblockEntries, 2, [&](uint64_t i) { return uint64_t(i < total); });
	append_table(refblocks, 8, [&](uint64_t i) { return (refblock_first + i) * kClusterSize; });
	flush();
	if (buf_offset_ != total * kClusterSize)
		fail(CLOUDLET_E_INTERNAL, path_ + ": qcow2 layout ends at " + std::to_string(buf_offset_) +
		                              ", expected " + std::to_string(total * kClusterSize));

	// The header last: until it is there the file is not a qcow2 image. The
	// sync before it means that after a crash a header on disk implies that
	// everything it points to is there too.
	if (fdatasync(fd_) != 0)
		fail_errno("cannot sync " + path_, errno);
	write_header(l1_first * kClusterSize, reftable_first * kClusterSize, reftable_clusters);
	if (fsync(fd_) != 0)
		fail_errno("cannot sync " + path_, errno);
	int fd = fd_;
	fd_ = -1;
	if (close(fd) != 0)
		fail_errno("cannot close " + path_, errno);
	finished_ = true;
	return total * kClusterSize;
}

void Qcow2LayerWriter::write_header(uint64_t l1_offset, uint64_t reftable_offset, uint64_t reftable_clusters) {
	uint8_t h[kClusterSize] = {};
	const uint8_t magic[4] = {'Q', 'F', 'I', 0xfb};
	std::copy(magic, magic + 4, h);
	put_be(h + 4, 3, 4); // version
	// 8: backing_file_offset, 16: backing_file_size (below)
	put_be(h + 20, kClusterBits, 4);
	put_be(h + 24, virtual_size_, 8);
	put_be(h + 32, 0, 4); // crypt_method: none
	put_be(h + 36, l2_.size(), 4);
	put_be(h + 40, l1_offset, 8);
	put_be(h + 48, reftable_offset, 8);
	put_be(h + 56, reftable_clusters, 4);
	put_be(h + 60, 0, 4);  // nb_snapshots
	put_be(h + 64, 0, 8);  // snapshots_offset
	put_be(h + 72, 0, 8);  // incompatible_features
	put_be(h + 80, 0, 8);  // compatible_features
	put_be(h + 88, 0, 8);  // autoclear_features
	put_be(h + 96, kRefcountOrder, 4);
	put_be(h + 100, kHeaderLength, 4);

	uint64_t at = kHeaderLength;
	put_be(h + at, kExtBackingFormat, 4);
	put_be(h + at + 4, backing_format_.size(), 4);
	std::copy(backing_format_.begin(), backing_format_.end(), h + at + 8);
	at += 8 + div_up(backing_format_.size(), 8) * 8;
	at += 8; // end of extensions: type 0, length 0 (already zero)
	// The backing file name goes after the extensions, inside cluster 0
	// (at most 104 + 24 + 8 + 1023 bytes).
	put_be(h + 8, at, 8);
	put_be(h + 16, backing_file_.size(), 4);
	std::copy(backing_file_.begin(), backing_file_.end(), h + at);
	pwrite_all(fd_, h, kClusterSize, 0, path_);
}

} // namespace cloudlet::qemu
