#include "host/tempdir.h"

#include "util/error.h"
#include "util/fd_io.h"
#include "util/unique_fd.h"

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
	UniqueFd in = open_for_reading(from);
	UniqueFd out(open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	if (!out)
		fail_errno("cannot create " + to, errno);
	std::vector<char> buf(1 << 20);
	while (size_t n = read_full(in.get(), buf.data(), buf.size(), from))
		write_all(out.get(), buf.data(), n, to);
	if (close(out.release()) < 0)
		fail_errno("cannot write " + to, errno);
}

} // namespace cloudlet::host
