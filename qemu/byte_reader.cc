#include "byte_reader.h"

#include "util/error.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cloudlet::qemu {

size_t FdSource::read(uint8_t *buf, size_t n) {
	for (;;) {
		ssize_t r = ::read(fd_, buf, n);
		if (r >= 0)
			return static_cast<size_t>(r);
		if (errno != EINTR)
			fail_errno("cannot read " + name_, errno);
	}
}

size_t MemorySource::read(uint8_t *buf, size_t n) {
	size_t k = std::min(n, size_ - pos_);
	if (k) // an empty source may have no data pointer at all
		memcpy(buf, data_ + pos_, k);
	pos_ += k;
	return k;
}

Reader::Reader(Source &src, std::string what, size_t buffer_size)
    : src_(src), what_(std::move(what)), buf_(buffer_size) {}

bool Reader::fill(size_t need) {
	if (len_ - pos_ >= need)
		return true;
	if (need > buf_.size())
		fail("internal: read of " + std::to_string(need) + " bytes exceeds the buffer");
	// Move the unread tail to the front, then read until `need` is there.
	if (pos_ > 0) {
		memmove(buf_.data(), buf_.data() + pos_, len_ - pos_);
		consumed_ += pos_;
		len_ -= pos_;
		pos_ = 0;
	}
	while (len_ < need) {
		size_t r = src_.read(buf_.data() + len_, buf_.size() - len_);
		if (r == 0)
			return false;
		len_ += r;
	}
	return true;
}

int Reader::peek() {
	if (!fill(1))
		return -1;
	return buf_[pos_];
}

const uint8_t *Reader::bytes(size_t n, const char *field) {
	if (!fill(n))
		fail("input ends inside " + std::string(field) + " (" + std::to_string(n) + " bytes needed, " +
		     std::to_string(len_ - pos_) + " left)");
	const uint8_t *p = buf_.data() + pos_;
	pos_ += n;
	return p;
}

uint8_t Reader::u8(const char *field) {
	return *bytes(1, field);
}

uint32_t Reader::be32(const char *field) {
	const uint8_t *p = bytes(4, field);
	return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

uint64_t Reader::be64(const char *field) {
	const uint8_t *p = bytes(8, field);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

std::string Reader::short_string(const char *field) {
	uint8_t n = u8(field);
	const uint8_t *p = bytes(n, field);
	return std::string(reinterpret_cast<const char *>(p), n);
}

size_t Reader::take_available(const uint8_t **data) {
	if (!fill(1)) {
		*data = nullptr;
		return 0;
	}
	*data = buf_.data() + pos_;
	size_t n = len_ - pos_;
	pos_ = len_;
	return n;
}

void Reader::fail(const std::string &problem) const {
	fail_at(offset(), problem);
}

void Reader::fail_at(uint64_t off, const std::string &problem) const {
	throw Error(CLOUDLET_E_CORRUPT, what_ + " offset " + std::to_string(off) + ": " + problem);
}

} // namespace cloudlet::qemu
