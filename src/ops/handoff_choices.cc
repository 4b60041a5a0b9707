#include "ops/handoff_choices.h"

#include "chunk/block_codec.h"
#include "net/handoff_wire.h"
#include "util/error.h"
#include "util/fd_io.h"
#include "util/unique_fd.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

namespace cloudlet::ops {

std::string read_handoff_token(const std::string &token_file) {
	UniqueFd fd(open(token_file.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd)
		fail_errno("cannot open token file " + token_file, errno);
	struct stat st {};
	fstat(fd.get(), &st);
	if (st.st_mode & 077)
		fail(CLOUDLET_E_PERMISSION, "token file " + token_file + " is readable by others (chmod 600 it)");
	std::string s(4096, '\0');
	ssize_t n = read_some(fd.get(), s.data(), s.size());
	if (n < 0)
		fail_errno("cannot read token file " + token_file, errno);
	s.resize(static_cast<size_t>(n));
	size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
	s = a == std::string::npos ? "" : s.substr(a, b - a + 1);
	if (s.size() < net::kMinTokenBytes)
		fail(CLOUDLET_E_INVALID_ARG, "token file " + token_file + " holds " + std::to_string(s.size()) +
		                                 " bytes; a token needs at least 32 (head -c 32 /dev/urandom | base64)");
	return s;
}

int handoff_level(const std::string &codec, int level) {
	if (level >= 0)
		return level;
	return chunk::default_level(codec == "lzma" ? chunk::Codec::Lzma : chunk::Codec::Zstd);
}

} // namespace cloudlet::ops
