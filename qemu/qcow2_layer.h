// A qcow2 v3 layer over a base VM's raw disk (docs/formats/qcow2-layer.md):
// VM synthesis rebuilds a disk as this layer holding only the 4 KiB chunks
// that changed; everything else is read from the backing file. Chunks come
// in any order and go straight to the file, so memory use is the mapping
// metadata (the L2 tables that will be written), never the data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cloudlet::qemu {

// Writes a qcow2 v3 image (4 KiB clusters, 16-bit refcounts) whose backing
// file supplies every cluster not written here. Data clusters are appended
// as they come; L2 tables, L1 table, refcounts and the header are written by
// finish(). Single-threaded use.
class Qcow2LayerWriter {
public:
	// Creates `path` (mode 0644, must not exist: O_EXCL). `backing_file` is stored as given
	// (absolute path), `backing_format` e.g. "raw" (stored as a backing-format header extension).
	// With `replace`, `path` must exist and is rewritten in place (same inode): a handoff's
	// destination QEMU holds the provisional layer open, inactive, and re-reads it when the
	// incoming migration completes (docs/handoff.md).
	Qcow2LayerWriter(const std::string &path, uint64_t virtual_size, const std::string &backing_file,
	                 const std::string &backing_format, bool replace = false);
	~Qcow2LayerWriter(); // unless finish() succeeded: closes and (unless replacing) unlinks the file
	Qcow2LayerWriter(const Qcow2LayerWriter &) = delete;
	Qcow2LayerWriter &operator=(const Qcow2LayerWriter &) = delete;

	// 4096 bytes for 4 KiB chunk `index` (byte offset index*4096). Each index at most once
	// (a second write of the same index, or an index beyond the virtual size, throws CLOUDLET_E_INVALID_ARG).
	void write_chunk(uint64_t index, const uint8_t *data);
	// Chunk `index` reads as zeros whatever the backing file holds (qcow2 v3 zero flag, no data cluster).
	void zero_chunk(uint64_t index);
	// Writes all metadata, the header last, fsyncs; returns the file size. After this the object is inert.
	uint64_t finish();
	uint64_t data_chunks() const;
	uint64_t zero_chunks() const { return zero_chunks_; }

private:
	// L2 entry of `index` for writing: checks the index and that it is unused.
	uint64_t &claim(uint64_t index, const char *what);
	void append(const uint8_t *data, size_t n);
	template <typename F>
	void append_table(uint64_t n, unsigned width, F value);
	void flush();
	void write_header(uint64_t l1_offset, uint64_t reftable_offset, uint64_t reftable_clusters);
	void check_open(const char *what) const;

	bool replace_ = false;
	std::string path_;
	int fd_ = -1;
	bool finished_ = false, broken_ = false;
	uint64_t virtual_size_, chunks_;
	std::string backing_file_, backing_format_;
	// One L2 table per L1 entry, allocated when a chunk first lands in it;
	// entries are final values (host offset | flags) in host byte order.
	std::vector<std::unique_ptr<uint64_t[]>> l2_;
	uint64_t data_chunks_ = 0, zero_chunks_ = 0;
	// Appends go through buf_, which starts at file offset buf_offset_.
	std::vector<uint8_t> buf_;
	uint64_t buf_offset_;
};

} // namespace cloudlet::qemu
