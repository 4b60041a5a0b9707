// Helpers shared by the base operations.
#pragma once

#include "store/base_store.h"

#include <string>

namespace cloudlet::ops {

void write_text_file(const std::string &path, const std::string &text);
std::string read_text_file(const std::string &path, size_t max_bytes);
std::string now_iso8601();
// A random UUID, lower-case text.
std::string new_uuid();
// Base files are read by QEMU's user: 0644 files in a 0755 folder.
void make_readable(const std::string &dir, const store::Manifest &m);

} // namespace cloudlet::ops
