// A file descriptor closed when it goes out of scope, and the usual way to
// get one: open for reading, or throw with the path and errno's reason.
#pragma once

#include "util/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace cloudlet {

class UniqueFd {
public:
	explicit UniqueFd(int fd) : fd_(fd) {}
	~UniqueFd() {
		if (fd_ >= 0)
			close(fd_);
	}
	UniqueFd(const UniqueFd &) = delete;
	UniqueFd &operator=(const UniqueFd &) = delete;
	int get() const { return fd_; }

private:
	int fd_;
};

inline UniqueFd open_for_reading(const std::string &path) {
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_errno("cannot open " + path, errno);
	return UniqueFd(fd);
}

} // namespace cloudlet
