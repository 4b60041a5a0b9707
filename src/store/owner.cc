#include "store/owner.h"

#include "util/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cloudlet::store {

namespace {

// Field 22 of /proc/<pid>/stat: the start time. The command name (field 2)
// may hold spaces and parentheses, so fields are counted after its last ')'.
bool start_time_of(long pid, unsigned long long *out) {
	char path[64];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	char buf[1024];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	if (!p)
		return false;
	p++;
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return false;
	}
	char *end = nullptr;
	*out = strtoull(p + 1, &end, 10);
	return end != p + 1;
}

} // namespace

ProcessId this_process() {
	ProcessId p;
	p.pid = getpid();
	if (!start_time_of(p.pid, &p.start))
		fail(CLOUDLET_E_INTERNAL, "cannot read this process's start time from /proc");
	return p;
}

bool alive(const ProcessId &p) {
	unsigned long long start = 0;
	return p.pid > 0 && start_time_of(p.pid, &start) && start == p.start;
}

std::string process_tag(const ProcessId &p) {
	return "p" + std::to_string(p.pid) + "." + std::to_string(p.start);
}

bool parse_process_tag(const std::string &name, ProcessId *out) {
	// The last "-p<digits>.<digits>-" in the name.
	for (size_t at = name.rfind("-p"); at != std::string::npos; at = at ? name.rfind("-p", at - 1) : std::string::npos) {
		const char *s = name.c_str() + at + 2;
		char *dot = nullptr, *end = nullptr;
		long pid = strtol(s, &dot, 10);
		if (dot == s || *dot != '.')
			continue;
		unsigned long long start = strtoull(dot + 1, &end, 10);
		if (end == dot + 1 || *end != '-')
			continue;
		out->pid = pid;
		out->start = start;
		return pid > 0;
	}
	return false;
}

} // namespace cloudlet::store
