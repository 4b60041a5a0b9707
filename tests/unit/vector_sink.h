// A ByteSink into memory, for tests that write our formats and read them back.
#pragma once

#include "stream_writer.h"

#include <cstdint>
#include <cstring>
#include <vector>

class VectorSink : public cloudlet::qemu::ByteSink {
public:
	void write(const uint8_t *d, size_t n) override {
		size_t at = bytes.size();
		bytes.resize(at + n);
		if (n)
			memcpy(bytes.data() + at, d, n);
	}
	std::vector<uint8_t> bytes;
};
