// Big-endian writing of QEMU migration stream fields into a ByteSink: the
// one encoder the precopy writer (stream_writer.cc) and the postcopy writer
// (postcopy_stream.cc) share.
#pragma once

#include "migration_stream.h"
#include "stream_writer.h"

#include <cstdint>
#include <string>

namespace cloudlet::qemu {

class Emitter {
public:
	explicit Emitter(ByteSink &out) : out_(out) {}
	void u8(uint8_t v) { out_.write(&v, 1); }
	void be16(uint16_t v) {
		uint8_t b[2] = {uint8_t(v >> 8), uint8_t(v)};
		out_.write(b, 2);
	}
	void be32(uint32_t v) {
		uint8_t b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
		out_.write(b, 4);
	}
	void be64(uint64_t v) {
		uint8_t b[8];
		for (int i = 0; i < 8; i++)
			b[i] = uint8_t(v >> (56 - 8 * i));
		out_.write(b, 8);
	}
	void str8(const std::string &s) {
		u8(static_cast<uint8_t>(s.size()));
		out_.write(reinterpret_cast<const uint8_t *>(s.data()), s.size());
	}
	void bytes(const uint8_t *p, size_t n) { out_.write(p, n); }
	void footer(uint32_t id) {
		u8(kSectionFooter);
		be32(id);
	}

private:
	ByteSink &out_;
};

} // namespace cloudlet::qemu
