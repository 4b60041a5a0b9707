// Free space and writability of a directory that may not exist yet (the
// nearest existing ancestor is examined, since that is where it would go).
#pragma once

#include <cloudlet.h>

#include <cstdint>
#include <string>

namespace cloudlet::host {

struct DirSpace {
	cloudlet_tristate writable = CLOUDLET_UNKNOWN;
	uint64_t free_bytes = 0, total_bytes = 0;
	std::string examined; // the directory actually examined
};

DirSpace dir_space(const std::string &dir);

} // namespace cloudlet::host
