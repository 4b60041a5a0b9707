// A file descriptor closed when it goes out of scope (the one fd owner of the
// library), and the usual way to get one: open for reading, or throw with
// the path and errno's reason.
#pragma once

#include "util/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

namespace cloudlet {

class UniqueFd {
public:
	UniqueFd() = default;
	explicit UniqueFd(int fd) : fd_(fd) {}
	~UniqueFd() { reset(); }
	UniqueFd(const UniqueFd &) = delete;
	UniqueFd &operator=(const UniqueFd &) = delete;
	UniqueFd(UniqueFd &&o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
	UniqueFd &operator=(UniqueFd &&o) noexcept {
		if (this != &o)
			reset(std::exchange(o.fd_, -1));
		return *this;
	}
	int get() const { return fd_; }
	explicit operator bool() const { return fd_ >= 0; }
	// Gives the fd up without closing it (to a callee that takes ownership).
	int release() { return std::exchange(fd_, -1); }
	// Closes the held fd (if any) and holds `fd` instead.
	void reset(int fd = -1) {
		if (fd_ >= 0)
			close(fd_);
		fd_ = fd;
	}

private:
	int fd_ = -1;
};

inline UniqueFd open_for_reading(const std::string &path) {
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_errno("cannot open " + path, errno);
	return UniqueFd(fd);
}

} // namespace cloudlet
