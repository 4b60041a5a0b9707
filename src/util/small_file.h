// Reading a small file whole (catalogs, journals, pid files, logs, tokens):
// the one bounded reader of the library. A file over the bound is an error
// (CLOUDLET_E_CORRUPT naming it), never silently cut.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace cloudlet {

// The whole file; std::nullopt if it does not exist. Other errors throw
// naming the file.
std::optional<std::string> read_small_file(const std::string &path, size_t max_bytes);
// The same for a file that must exist (missing: CLOUDLET_E_NOT_FOUND).
std::string read_required_small_file(const std::string &path, size_t max_bytes);

} // namespace cloudlet
