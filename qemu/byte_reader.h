// Buffered, offset-tracking reading of untrusted bytes from a file, pipe,
// socket or memory. Every read is bounds-checked; running out of input is a
// CLOUDLET_E_CORRUPT error that names the offset and what was being read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cloudlet::qemu {

// Where bytes come from. read() returns 0 only at the end of input.
class Source {
public:
	virtual ~Source() = default;
	virtual size_t read(uint8_t *buf, size_t n) = 0;
};

// Reads a file descriptor (file, pipe or socket); does not own it.
class FdSource : public Source {
public:
	explicit FdSource(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
	size_t read(uint8_t *buf, size_t n) override;

private:
	int fd_;
	std::string name_;
};

// Reads a memory range; does not copy it.
class MemorySource : public Source {
public:
	MemorySource(const uint8_t *data, size_t size) : data_(data), size_(size) {}
	size_t read(uint8_t *buf, size_t n) override;

private:
	const uint8_t *data_;
	size_t size_, pos_ = 0;
};

class Reader {
public:
	// `what` names the input in error messages ("QEMU stream", a file name).
	Reader(Source &src, std::string what, size_t buffer_size = 1 << 20);

	uint64_t offset() const { return consumed_ + pos_; }
	// The next byte, or -1 at the end of input.
	int peek();
	bool at_end() { return peek() < 0; }

	uint8_t u8(const char *field);
	uint32_t be32(const char *field);
	uint64_t be64(const char *field);
	// A length-prefixed (u8) string, as QEMU writes idstrs.
	std::string short_string(const char *field);
	// `n` bytes; the pointer stays valid until the next call. n <= buffer size.
	const uint8_t *bytes(size_t n, const char *field);
	// Everything buffered right now, at least one byte unless at the end.
	// Used to pass opaque data through without copying it twice.
	size_t take_available(const uint8_t **data);

	[[noreturn]] void fail(const std::string &problem) const;
	[[noreturn]] void fail_at(uint64_t offset, const std::string &problem) const;

private:
	bool fill(size_t need); // ensures `need` bytes are buffered; false at end
	Source &src_;
	std::string what_;
	std::vector<uint8_t> buf_;
	size_t pos_ = 0, len_ = 0;
	uint64_t consumed_ = 0; // bytes dropped from the front of buf_
};

} // namespace cloudlet::qemu
