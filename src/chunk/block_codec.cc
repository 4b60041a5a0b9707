#include "chunk/block_codec.h"

#include "util/error.h"

#include <lzma.h>
#include <zstd.h>

#include <cstring>

namespace cloudlet::chunk {

const char *codec_name(Codec c) {
	switch (c) {
	case Codec::None: return "none";
	case Codec::Zstd: return "zstd";
	case Codec::Lzma: return "lzma";
	}
	return "unknown";
}

Codec codec_from_name(const std::string &name) {
	if (name == "none")
		return Codec::None;
	if (name == "zstd")
		return Codec::Zstd;
	if (name == "lzma" || name == "xz")
		return Codec::Lzma;
	fail(CLOUDLET_E_INVALID_ARG, "unknown codec '" + name + "' (none, zstd, lzma)");
}

void compress_block(Codec c, int level, const uint8_t *data, size_t n, std::vector<uint8_t> &out) {
	size_t at = out.size();
	switch (c) {
	case Codec::None:
		out.insert(out.end(), data, data + n);
		return;
	case Codec::Zstd: {
		out.resize(at + ZSTD_compressBound(n));
		size_t r = ZSTD_compress(out.data() + at, out.size() - at, data, n, level < 0 ? default_level(c) : level);
		if (ZSTD_isError(r))
			fail(CLOUDLET_E_INTERNAL, std::string("zstd compression failed: ") + ZSTD_getErrorName(r));
		out.resize(at + r);
		return;
	}
	case Codec::Lzma: {
		out.resize(at + lzma_stream_buffer_bound(n));
		size_t pos = at;
		uint32_t preset = static_cast<uint32_t>(level < 0 ? default_level(c) : level);
		lzma_ret r = lzma_easy_buffer_encode(preset, LZMA_CHECK_NONE, nullptr, data, n, out.data(), &pos, out.size());
		if (r != LZMA_OK)
			fail(CLOUDLET_E_INTERNAL, "lzma compression failed (" + std::to_string(static_cast<int>(r)) + ")");
		out.resize(pos);
		return;
	}
	}
	fail(CLOUDLET_E_INVALID_ARG, "unknown codec " + std::to_string(static_cast<uint32_t>(c)));
}

void check_stored_block(Codec c, const uint8_t *data, size_t n, size_t out_size, const std::string &what) {
	if (c == Codec::None && n != out_size)
		fail(CLOUDLET_E_CORRUPT, what + ": stored block of " + std::to_string(n) + " bytes, expected " +
		                             std::to_string(out_size));
	if (c == Codec::Zstd && ZSTD_getFrameContentSize(data, n) != out_size)
		fail(CLOUDLET_E_CORRUPT, what + ": zstd frame does not declare " + std::to_string(out_size) + " bytes");
}

void decompress_block(Codec c, const uint8_t *data, size_t n, uint8_t *out, size_t out_size, const std::string &what) {
	switch (c) {
	case Codec::None:
		if (n != out_size)
			fail(CLOUDLET_E_CORRUPT, what + ": stored block of " + std::to_string(n) + " bytes, expected " +
			                             std::to_string(out_size));
		if (n)
			memcpy(out, data, n);
		return;
	case Codec::Zstd: {
		unsigned long long declared = ZSTD_getFrameContentSize(data, n);
		if (declared != out_size)
			fail(CLOUDLET_E_CORRUPT, what + ": zstd frame does not declare " + std::to_string(out_size) + " bytes");
		size_t r = ZSTD_decompress(out, out_size, data, n);
		if (ZSTD_isError(r) || r != out_size)
			fail(CLOUDLET_E_CORRUPT, what + ": zstd data is damaged" +
			                             (ZSTD_isError(r) ? std::string(" (") + ZSTD_getErrorName(r) + ")" : ""));
		return;
	}
	case Codec::Lzma: {
		uint64_t memlimit = 256ull << 20; // enough for preset 9 (~65 MiB); bounds hostile input
		size_t in_pos = 0, out_pos = 0;
		lzma_ret r = lzma_stream_buffer_decode(&memlimit, 0, nullptr, data, &in_pos, n, out, &out_pos, out_size);
		if (r != LZMA_OK || in_pos != n || out_pos != out_size)
			fail(CLOUDLET_E_CORRUPT, what + ": xz data is damaged or not " + std::to_string(out_size) +
			                             " bytes (liblzma " + std::to_string(static_cast<int>(r)) + ")");
		return;
	}
	}
	fail(CLOUDLET_E_CORRUPT, what + ": unknown codec " + std::to_string(static_cast<uint32_t>(c)));
}

} // namespace cloudlet::chunk
