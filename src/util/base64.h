// Base64 (RFC 4648, with padding) for binary fields in JSON headers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet {

std::string base64_encode(const std::vector<uint8_t> &data);
// Throws CLOUDLET_E_CORRUPT (naming `what`) on malformed input.
std::vector<uint8_t> base64_decode(const std::string &text, const std::string &what);

} // namespace cloudlet
