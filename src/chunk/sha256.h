// Streaming SHA-256 (OpenSSL EVP: SHA-NI where the CPU has it). Used for
// content identity (base IDs, package manifests, the leaves and root of a
// base part's digest: chunk/content_digest.h), never for lookup.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cloudlet::chunk {

class Sha256 {
public:
	Sha256();
	~Sha256();
	Sha256(const Sha256 &) = delete;
	Sha256 &operator=(const Sha256 &) = delete;
	void update(const void *data, size_t n);
	std::string hex(); // finishes; lower-case, 64 characters
	// Finishes into `out` and starts a new hash (the object is reusable).
	void digest(uint8_t out[32]);

private:
	void *ctx_; // EVP_MD_CTX
};

std::string sha256_hex(const void *data, size_t n);

std::string to_hex(const uint8_t *bytes, size_t n);

// The SHA-256 of a whole file's bytes, reading it in 1 MiB blocks. Throws on
// I/O errors. Not a base part's digest (that is chunk/content_digest.h).
std::string sha256_file(const std::string &path, uint64_t *size = nullptr);

} // namespace cloudlet::chunk
