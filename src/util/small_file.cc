#include "util/small_file.h"

#include "util/error.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>

namespace cloudlet {

std::optional<std::string> read_small_file(const std::string &path, size_t max_bytes) {
	FILE *f = fopen(path.c_str(), "re");
	if (!f) {
		if (errno == ENOENT)
			return std::nullopt;
		fail_errno("cannot open " + path, errno);
	}
	std::string text;
	char buf[65536];
	size_t n;
	while (text.size() < max_bytes && (n = fread(buf, 1, sizeof buf, f)) > 0)
		text.append(buf, std::min(n, max_bytes - text.size()));
	bool bad = ferror(f);
	fclose(f);
	if (bad)
		fail(CLOUDLET_E_IO, "cannot read " + path);
	return text;
}

} // namespace cloudlet
