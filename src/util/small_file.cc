#include "util/small_file.h"

#include "util/error.h"
#include "util/fd_io.h"
#include "util/unique_fd.h"

#include <fcntl.h>

#include <cerrno>

namespace cloudlet {

std::optional<std::string> read_small_file(const std::string &path, size_t max_bytes) {
	UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd) {
		if (errno == ENOENT)
			return std::nullopt;
		fail_errno("cannot open " + path, errno);
	}
	return read_rest(fd.get(), max_bytes, path);
}

std::string read_required_small_file(const std::string &path, size_t max_bytes) {
	UniqueFd fd = open_for_reading(path);
	return read_rest(fd.get(), max_bytes, path);
}

} // namespace cloudlet
