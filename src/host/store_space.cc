#include "host/store_space.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>

namespace cloudlet::host {

DirSpace dir_space(const std::string &dir) {
	DirSpace out;
	std::filesystem::path p(dir);
	std::error_code ec;
	while (!p.empty() && !std::filesystem::exists(p, ec) && p.has_parent_path() && p != p.parent_path())
		p = p.parent_path();
	out.examined = p.string();
	struct statvfs st {};
	if (statvfs(out.examined.c_str(), &st) == 0) {
		out.free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
		out.total_bytes = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
	}
	out.writable = access(out.examined.c_str(), W_OK | X_OK) == 0 ? CLOUDLET_YES : CLOUDLET_NO;
	return out;
}

} // namespace cloudlet::host
