// What the caller of a handoff chose, made into what the handoff uses
// (ops::HandoffOptions): the shared secret from the token file it names,
// and the level the items are compressed at. Decided here, not at the ABI,
// which only translates.
#pragma once

#include <string>

namespace cloudlet::ops {

// The token in `token_file`: at least 32 bytes once surrounding whitespace
// is trimmed (CLOUDLET_E_INVALID_ARG), in a file neither group nor others
// may read (CLOUDLET_E_PERMISSION), like an ssh key. Only the file's first
// 4 KiB are read.
std::string read_handoff_token(const std::string &token_file);

// The level a handoff compresses at: `level`, or for -1 the default of the
// codec it starts with: lzma's for "lzma", zstd's otherwise ("auto" starts
// with zstd; "none" compresses nothing and records zstd's).
int handoff_level(const std::string &codec, int level);

} // namespace cloudlet::ops
