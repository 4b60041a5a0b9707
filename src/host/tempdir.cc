#include "host/tempdir.h"

#include "util/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace cloudlet::host {

TempDir::TempDir(const std::string &prefix, const std::string &parent) {
	std::string base = parent;
	if (base.empty()) {
		const char *t = getenv("TMPDIR");
		base = t && *t ? t : "/tmp";
	}
	std::string tmpl = base + "/" + prefix + "XXXXXX";
	std::vector<char> buf(tmpl.begin(), tmpl.end());
	buf.push_back('\0');
	if (!mkdtemp(buf.data()))
		fail_errno("cannot create a temporary directory in " + base, errno);
	path_ = buf.data();
}

TempDir::~TempDir() {
	std::error_code ec;
	std::filesystem::remove_all(path_, ec);
}

void copy_file(const std::string &from, const std::string &to) {
	int in = open(from.c_str(), O_RDONLY | O_CLOEXEC);
	if (in < 0)
		fail_errno("cannot open " + from, errno);
	int out = open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		int e = errno;
		close(in);
		fail_errno("cannot create " + to, e);
	}
	std::vector<char> buf(1 << 20);
	for (;;) {
		ssize_t n = read(in, buf.data(), buf.size());
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(in);
			close(out);
			fail_errno("cannot read " + from, e);
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf.data() + off, static_cast<size_t>(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				int e = errno;
				close(in);
				close(out);
				fail_errno("cannot write " + to, e);
			}
			off += w;
		}
	}
	close(in);
	if (close(out) < 0)
		fail_errno("cannot write " + to, errno);
}

std::string read_file(const std::string &path, size_t max_bytes) {
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_errno("cannot open " + path, errno);
	std::string out;
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			fail_errno("cannot read " + path, e);
		}
		if (n == 0)
			break;
		out.append(buf, static_cast<size_t>(n));
		if (out.size() > max_bytes) {
			close(fd);
			fail(CLOUDLET_E_CORRUPT, path + ": larger than " + std::to_string(max_bytes) + " bytes");
		}
	}
	close(fd);
	return out;
}

} // namespace cloudlet::host
