// Reading a small text file whole (catalogs, journals), bounded in size.
#pragma once

#include <optional>
#include <string>

namespace cloudlet {

// The file's first `max_bytes` bytes; std::nullopt if it does not exist.
// Other errors throw CLOUDLET_E_IO naming the file.
std::optional<std::string> read_small_file(const std::string &path, size_t max_bytes);

} // namespace cloudlet
