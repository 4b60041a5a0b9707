// What the caller of a handoff chose, made into what the handoff uses
// (ops::HandoffOptions): the credentials (the shared secret from the token
// file it names, or an X.509 directory) and the level the items are
// compressed at. Decided here, not at the ABI, which only translates.
#pragma once

#include "net/secure_link.h"

#include <cloudlet.h>

#include <string>

namespace cloudlet::ops {

// The token in `token_file`: at least 32 bytes once surrounding whitespace
// is trimmed (CLOUDLET_E_INVALID_ARG), in a file neither group nor others
// may read (CLOUDLET_E_PERMISSION), like an ssh key; a file over 4 KiB is
// refused (CLOUDLET_E_INVALID_ARG: not a token).
std::string read_handoff_token(const std::string &token_file);

// The credentials of `security` (cloudlet_handoff_security): TLS-PSK and
// plaintext need `token_file` (read as above) and no `tls_dir`; X.509 needs
// `tls_dir` and no token file. CLOUDLET_E_INVALID_ARG otherwise.
net::SecurityConfig handoff_security(unsigned security, const std::string &token_file, const std::string &tls_dir);

// Loads a destination's credentials as a handoff receive would, now (the
// certificates read and matched to their keys), so that a receiver can
// refuse to start, or stop, on credentials no handoff could use.
void check_receive_credentials(const net::SecurityConfig &security);

// The level a handoff compresses at: `level`, or for -1 the default of the
// codec it starts with: lzma's for "lzma", zstd's otherwise ("auto" starts
// with zstd; "none" compresses nothing and records zstd's).
int handoff_level(const std::string &codec, int level);

} // namespace cloudlet::ops
