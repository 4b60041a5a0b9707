#include "ops/base_common.h"

#include "ops/base.h"

#include "host/tempdir.h"
#include "util/error.h"

#include <sys/stat.h>
#include <uuid/uuid.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

namespace cloudlet::ops {

void write_text_file(const std::string &path, const std::string &text) {
	FILE *f = fopen(path.c_str(), "wb");
	if (!f)
		fail_errno("cannot create " + path, errno);
	bool ok = fwrite(text.data(), 1, text.size(), f) == text.size();
	ok = (fclose(f) == 0) && ok;
	if (!ok)
		fail_errno("cannot write " + path, errno);
}

std::string read_text_file(const std::string &path, size_t max_bytes) { return host::read_file(path, max_bytes); }

std::string now_iso8601() {
	time_t t = time(nullptr);
	struct tm tm {};
	gmtime_r(&t, &tm);
	char buf[32];
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

void make_readable(const std::string &dir, const store::Manifest &m) {
	chmod(dir.c_str(), 0755);
	chmod((dir + "/manifest.json").c_str(), 0644);
	for (const auto &p : m.parts)
		chmod((dir + "/" + p.file).c_str(), 0644);
}

BaseInfo stored_base_info(const store::BaseStore &st, const store::CatalogEntry &e, const store::Manifest &m) {
	BaseInfo info;
	info.entry = e;
	info.manifest = m;
	info.dir = st.base_dir(e.id);
	info.status = "ok";
	return info;
}

std::string new_uuid() {
	uuid_t u;
	char s[37];
	uuid_generate_random(u);
	uuid_unparse_lower(u, s);
	return s;
}

} // namespace cloudlet::ops
