#include "util/fd_io.h"

#include "util/error.h"

#include <unistd.h>

#include <cerrno>

namespace cloudlet {

ssize_t read_some(int fd, void *buf, size_t n) {
	for (;;) {
		ssize_t r = read(fd, buf, n);
		if (r >= 0 || errno != EINTR)
			return r;
	}
}

size_t read_full(int fd, void *buf, size_t n, const std::string &what) {
	auto *p = static_cast<uint8_t *>(buf);
	size_t done = 0;
	while (done < n) {
		ssize_t r = read_some(fd, p + done, n - done);
		if (r < 0)
			fail_errno("cannot read " + what, errno);
		if (r == 0)
			break;
		done += static_cast<size_t>(r);
	}
	return done;
}

void write_all(int fd, const void *buf, size_t n, const std::string &what) {
	auto *p = static_cast<const uint8_t *>(buf);
	for (size_t done = 0; done < n;) {
		ssize_t w = write(fd, p + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			fail_errno("cannot write " + what, errno);
		done += static_cast<size_t>(w);
	}
}

void pread_full(int fd, void *buf, size_t n, uint64_t offset, const std::string &what) {
	auto *p = static_cast<uint8_t *>(buf);
	for (size_t got = 0; got < n;) {
		ssize_t r = pread(fd, p + got, n - got, static_cast<off_t>(offset + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail_errno("cannot read " + what, errno);
		if (r == 0)
			fail(CLOUDLET_E_IO, "cannot read " + what + ": it ends at " + std::to_string(offset + got) +
			                        ", before the " + std::to_string(offset + n) + " bytes expected");
		got += static_cast<size_t>(r);
	}
}

void pwrite_all(int fd, const void *buf, size_t n, uint64_t offset, const std::string &what) {
	auto *p = static_cast<const uint8_t *>(buf);
	for (size_t done = 0; done < n;) {
		ssize_t w = pwrite(fd, p + done, n - done, static_cast<off_t>(offset + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			fail_errno("cannot write " + what, errno);
		done += static_cast<size_t>(w);
	}
}

std::string read_rest(int fd, size_t max_bytes, const std::string &what) {
	std::string out;
	char buf[65536];
	for (;;) {
		ssize_t n = read_some(fd, buf, sizeof buf);
		if (n < 0)
			fail_errno("cannot read " + what, errno);
		if (n == 0)
			return out;
		if (out.size() + static_cast<size_t>(n) > max_bytes)
			fail(CLOUDLET_E_CORRUPT, what + ": larger than " + std::to_string(max_bytes) + " bytes");
		out.append(buf, static_cast<size_t>(n));
	}
}

} // namespace cloudlet
