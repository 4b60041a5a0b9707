// Whole-block compression for overlays and packages: zstd (fast) and LZMA
// (xz; smallest), each block independent so blocks decompress in parallel
// and one can be fetched alone. Decompression is bounded: the caller states
// the exact output size and the input is refused if it does not produce
// exactly that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet::chunk {

enum class Codec : uint32_t { None = 0, Zstd = 1, Lzma = 2 };

const char *codec_name(Codec c);
// "none", "zstd", "lzma"; throws CLOUDLET_E_INVALID_ARG otherwise.
Codec codec_from_name(const std::string &name);

// The level a codec compresses at when none is asked for: zstd 3, lzma 6
// (its preset); none has no levels (0). The one home of that rule.
constexpr int default_level(Codec c) { return c == Codec::Zstd ? 3 : c == Codec::Lzma ? 6 : 0; }

// Compresses `n` bytes at `level` (zstd 1..19, lzma 0..9; -1: the codec's
// default). Appends to `out`.
void compress_block(Codec c, int level, const uint8_t *data, size_t n, std::vector<uint8_t> &out);

// Decompresses into exactly `out_size` bytes at `out`. Throws
// CLOUDLET_E_CORRUPT (naming `what`) if the input is malformed or yields
// another size.
void decompress_block(Codec c, const uint8_t *data, size_t n, uint8_t *out, size_t out_size, const std::string &what);

// What can be checked of a stored block before its `out_size` bytes of
// output are allocated: a None block is exactly out_size bytes, a zstd
// frame declares out_size as its content size. (An xz stream records its
// size only at its end; decompress_block checks it.) Throws as above.
void check_stored_block(Codec c, const uint8_t *data, size_t n, size_t out_size, const std::string &what);

} // namespace cloudlet::chunk
