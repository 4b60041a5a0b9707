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
	constexpr size_t kMaxTokenFile = 4096;
	std::string s(kMaxTokenFile + 1, '\0');
	size_t n = read_full(fd.get(), s.data(), s.size(), "token file " + token_file);
	if (n > kMaxTokenFile)
		fail(CLOUDLET_E_INVALID_ARG, "token file " + token_file + " is larger than 4 KiB: not a token "
		                                                         "(head -c 32 /dev/urandom | base64)");
	s.resize(n);
	size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
	s = a == std::string::npos ? "" : s.substr(a, b - a + 1);
	if (s.size() < net::kMinTokenBytes)
		fail(CLOUDLET_E_INVALID_ARG, "token file " + token_file + " holds " + std::to_string(s.size()) +
		                                 " bytes; a token needs at least 32 (head -c 32 /dev/urandom | base64)");
	return s;
}

net::SecurityConfig handoff_security(unsigned security, const std::string &token_file, const std::string &tls_dir) {
	net::SecurityConfig c;
	switch (security) {
	case CLOUDLET_HANDOFF_TLS_PSK: c.mode = net::Security::TlsPsk; break;
	case CLOUDLET_HANDOFF_TLS_X509: c.mode = net::Security::TlsX509; break;
	case CLOUDLET_HANDOFF_PLAINTEXT_UNSAFE: c.mode = net::Security::PlaintextUnsafe; break;
	default: fail(CLOUDLET_E_INVALID_ARG, "security " + std::to_string(security) + " is not a cloudlet_handoff_security");
	}
	if (c.mode == net::Security::TlsX509) {
		if (tls_dir.empty())
			fail(CLOUDLET_E_INVALID_ARG, "X.509 handoff needs tls_dir, the certificate directory");
		if (!token_file.empty())
			fail(CLOUDLET_E_INVALID_ARG, "a token file and X.509 certificates exclude each other");
		c.x509_dir = tls_dir;
		return c;
	}
	if (!tls_dir.empty())
		fail(CLOUDLET_E_INVALID_ARG, "tls_dir is only for X.509 handoff");
	if (token_file.empty())
		fail(CLOUDLET_E_INVALID_ARG, "token_file is required");
	c.token = read_handoff_token(token_file);
	return c;
}

void check_receive_credentials(const net::SecurityConfig &security) {
	net::LinkSetup(security, net::LinkSetup::Role::Server);
}

int handoff_level(const std::string &codec, int level) {
	if (level >= 0)
		return level;
	return chunk::default_level(codec == "lzma" ? chunk::Codec::Lzma : chunk::Codec::Zstd);
}

} // namespace cloudlet::ops
