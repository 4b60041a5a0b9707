#include "util/sparse_file.h"

#include "util/error.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace cloudlet {

DataExtents::DataExtents(int fd, uint64_t size, const std::string &path) : size_(size) {
	for (uint64_t at = 0; at < size;) {
		off_t d = lseek(fd, static_cast<off_t>(at), SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			break; // only a hole from `at` to the end
		if (d < 0 && (errno == EINVAL || errno == EOPNOTSUPP)) {
			ext_.assign(1, {0, size}); // no SEEK_DATA here: all data
			return;
		}
		if (d < 0)
			fail_errno("cannot find the data of " + path, errno);
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			fail_errno("cannot find the holes of " + path, errno);
		uint64_t from = static_cast<uint64_t>(d), to = std::min<uint64_t>(size, static_cast<uint64_t>(h));
		if (from >= size)
			break;
		if (to <= from) // cannot happen on a sane file system; do not loop
			to = size;
		ext_.push_back({from, to});
		at = to;
	}
}

size_t DataExtents::first_after(uint64_t at) const {
	return static_cast<size_t>(
	    std::upper_bound(ext_.begin(), ext_.end(), at, [](uint64_t v, const auto &e) { return v < e.second; }) -
	    ext_.begin());
}

bool DataExtents::hole(uint64_t from, uint64_t to) const {
	size_t i = first_after(from);
	return i == ext_.size() || ext_[i].first >= to;
}

std::vector<std::pair<uint64_t, uint64_t>> DataExtents::data_in(uint64_t from, uint64_t to) const {
	std::vector<std::pair<uint64_t, uint64_t>> out;
	for (size_t i = first_after(from); i < ext_.size() && ext_[i].first < to; i++)
		out.push_back({std::max(from, ext_[i].first), std::min(to, ext_[i].second)});
	return out;
}

uint64_t DataExtents::data_bytes() const {
	uint64_t n = 0;
	for (const auto &e : ext_)
		n += e.second - e.first;
	return n;
}

} // namespace cloudlet
