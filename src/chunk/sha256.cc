#include "chunk/sha256.h"

#include "util/error.h"
#include "util/fd_io.h"
#include "util/unique_fd.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace cloudlet::chunk {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
	if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX *>(ctx_), EVP_sha256(), nullptr) != 1)
		fail(CLOUDLET_E_INTERNAL, "OpenSSL cannot initialise SHA-256");
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX *>(ctx_)); }

void Sha256::update(const void *data, size_t n) {
	if (n && EVP_DigestUpdate(static_cast<EVP_MD_CTX *>(ctx_), data, n) != 1)
		fail(CLOUDLET_E_INTERNAL, "SHA-256 update failed");
}

std::string Sha256::hex() {
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX *>(ctx_), md, &len) != 1)
		fail(CLOUDLET_E_INTERNAL, "SHA-256 final failed");
	return to_hex(md, len);
}

void Sha256::digest(uint8_t out[32]) {
	unsigned int len = 0;
	auto *c = static_cast<EVP_MD_CTX *>(ctx_);
	if (EVP_DigestFinal_ex(c, out, &len) != 1 || len != 32 || EVP_DigestInit_ex(c, EVP_sha256(), nullptr) != 1)
		fail(CLOUDLET_E_INTERNAL, "SHA-256 final failed");
}

std::string to_hex(const uint8_t *bytes, size_t n) {
	static const char digits[] = "0123456789abcdef";
	std::string s;
	s.reserve(2 * n);
	for (size_t i = 0; i < n; i++) {
		s += digits[bytes[i] >> 4];
		s += digits[bytes[i] & 15];
	}
	return s;
}

std::string sha256_hex(const void *data, size_t n) {
	Sha256 h;
	h.update(data, n);
	return h.hex();
}

std::string sha256_file(const std::string &path, uint64_t *size) {
	UniqueFd fd = open_for_reading(path);
	posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
	Sha256 h;
	std::vector<uint8_t> buf(1 << 20);
	uint64_t total = 0;
	while (size_t n = read_full(fd.get(), buf.data(), buf.size(), path)) {
		h.update(buf.data(), n);
		total += n;
	}
	if (size)
		*size = total;
	return h.hex();
}

} // namespace cloudlet::chunk
