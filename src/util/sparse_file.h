// Reading files that may be sparse: where the data is (SEEK_DATA /
// SEEK_HOLE), so holes are never read, and a pread that fills its buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cloudlet {

// The data extents of an open file of `size` bytes, found once. A file
// system without SEEK_HOLE reports the whole file as data; a "data" extent
// may still hold zeros (readers must not assume otherwise). Memory: 16
// bytes per extent, i.e. it grows with the file's allocation, not its size.
class DataExtents {
public:
	DataExtents(int fd, uint64_t size, const std::string &path);
	uint64_t size() const { return size_; }
	// True if [from, to) holds no data extent (reads as zeros).
	bool hole(uint64_t from, uint64_t to) const;
	// The data extents meeting [from, to), clipped to it, in order.
	std::vector<std::pair<uint64_t, uint64_t>> data_in(uint64_t from, uint64_t to) const;
	uint64_t data_bytes() const;

private:
	// first extent whose end is after `at`
	size_t first_after(uint64_t at) const;
	uint64_t size_ = 0;
	std::vector<std::pair<uint64_t, uint64_t>> ext_; // [start, end), sorted, disjoint
};


} // namespace cloudlet
