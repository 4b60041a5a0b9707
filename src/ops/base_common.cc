#include "ops/base_common.h"

#include "ops/base.h"

#include "host/tempdir.h"
#include "util/error.h"
#include "util/small_file.h"
#include "virt/domain.h"

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

std::string read_text_file(const std::string &path, size_t max_bytes) { return read_required_small_file(path, max_bytes); }

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
	add_allocation(info);
	return info;
}

void add_allocation(BaseInfo &info) {
	info.part_allocated.clear();
	info.allocated_bytes = 0;
	for (const auto &p : info.manifest.parts) {
		struct stat st {};
		uint64_t a = stat((info.dir + "/" + p.file).c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
		info.part_allocated.push_back(a);
		info.allocated_bytes += a;
	}
}

std::string new_uuid() {
	uuid_t u;
	char s[37];
	uuid_generate_random(u);
	uuid_unparse_lower(u, s);
	return s;
}

std::string domain_uuid(const virt::Connection &conn, const std::string &requested) {
	if (requested.empty())
		return new_uuid();
	std::string u = requested;
	bool ok = u.size() == 36;
	for (size_t i = 0; ok && i < u.size(); i++) {
		char &c = u[i];
		if (i == 8 || i == 13 || i == 18 || i == 23)
			ok = c == '-';
		else if (c >= 'A' && c <= 'F')
			c = char(c - 'A' + 'a');
		else
			ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
	}
	if (!ok)
		fail(CLOUDLET_E_INVALID_ARG, "UUID '" + requested.substr(0, 64) +
		                                 "' is not 36 characters of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
	if (virt::find_domain_by_uuid(conn, u))
		fail(CLOUDLET_E_EXISTS, "a domain with UUID " + u + " already exists");
	return u;
}

} // namespace cloudlet::ops
