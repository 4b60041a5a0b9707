// Writes a QEMU migration stream (and a libvirt save image around it) from
// a memory image: the configuration section as it was, one RAM setup
// section with the block table, every page once (zero pages as ZERO
// records), an empty RAM end section, then the device state byte-exact.
// Stock QEMU restores it (virDomainRestoreFlags).
#pragma once

#include "image_file.h"

#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet::qemu {

// Where written bytes go.
class ByteSink {
public:
	virtual ~ByteSink() = default;
	virtual void write(const uint8_t *data, size_t n) = 0;
};

// Buffered writes to a file descriptor (file, pipe, FIFO); does not own it.
class FdSink : public ByteSink {
public:
	FdSink(int fd, std::string name) : fd_(fd), name_(std::move(name)) { buf_.reserve(1 << 20); }
	~FdSink() override;
	void write(const uint8_t *data, size_t n) override;
	void flush();
	uint64_t written() const { return written_; }

private:
	int fd_;
	std::string name_;
	std::vector<uint8_t> buf_;
	uint64_t written_ = 0;
};

void write_stream(ByteSink &out, const PageProvider &img);

} // namespace cloudlet::qemu
