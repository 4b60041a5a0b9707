// Helpers shared by the base operations.
#pragma once

#include "store/base_store.h"
#include "virt/connection.h"

#include <string>

namespace cloudlet::ops {

void write_text_file(const std::string &path, const std::string &text);
std::string read_text_file(const std::string &path, size_t max_bytes);
std::string now_iso8601();
// A random UUID, lower-case text.
std::string new_uuid();
// The UUID a new domain gets: `requested` in canonical lower-case form
// (CLOUDLET_E_INVALID_ARG unless it is 36 characters 8-4-4-4-12 of hex
// digits; CLOUDLET_E_EXISTS if a domain already has it), or a random one
// when `requested` is empty. Orchestrators (Nova) name domains by UUID.
std::string domain_uuid(const virt::Connection &conn, const std::string &requested);
// Base files are read by QEMU's user: 0644 files in a 0755 folder.
void make_readable(const std::string &dir, const store::Manifest &m);

} // namespace cloudlet::ops
