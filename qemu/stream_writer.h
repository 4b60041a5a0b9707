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

// A stream written in passes, as QEMU itself sends a live migration: the
// RAM block table, then any number of passes over any pages (a later pass
// overwrites a page QEMU already loaded), then the device state. A handoff's
// destination feeds QEMU this way while pages still arrive.
class StreamWriter {
public:
	StreamWriter(ByteSink &out, const StreamInfo &layout) : out_(out), info_(layout) {}
	void begin();                                  // head(), then ram_setup()
	void head();                                   // header and configuration
	void ram_setup();                              // the RAM START section: the block table
	// One pass over every page. With kFreshRam the stream is for a QEMU
	// that has just started: its main RAM ("pc.ram") is still all zero, so
	// zero pages there are left out (QEMU would read each one only to find
	// it zero). Other blocks (firmware, option ROMs, ACPI tables) are loaded
	// by QEMU at start and always get every page.
	enum Target { kAnyRam, kFreshRam };
	void all_pages(const PageProvider &img, Target target = kAnyRam);
	// One pass over these pages (ascending linear page numbers).
	void pages(const PageProvider &img, const std::vector<uint64_t> &linear);
	void end(const std::vector<uint8_t> &device_state); // RAM end, then the device state byte-exact

private:
	ByteSink &out_;
	StreamInfo info_; // blocks and section ids (a copy: the provider's may change)
};

// begin, all_pages, end with the provider's device state.
void write_stream(ByteSink &out, const PageProvider &img, StreamWriter::Target target = StreamWriter::kAnyRam);

// The RAM block a fresh QEMU holds zeroed at start (pc and q35 machines).
constexpr const char *kMainRamBlock = "pc.ram";

} // namespace cloudlet::qemu
