#include "store/undo_journal.h"

#include "store/owner.h"
#include "util/error.h"
#include "util/small_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace cloudlet::store {

UndoJournal::UndoJournal(const std::string &store_root, const std::string &operation) {
	std::string t = store_root + "/tmp/journal-" + operation + "-" + process_tag(this_process()) + "-XXXXXX";
	fd_.reset(mkostemp(t.data(), O_CLOEXEC | O_APPEND));
	if (!fd_)
		fail_errno("cannot create an undo journal in " + store_root + "/tmp", errno);
	path_ = t;
}

UndoJournal::~UndoJournal() {
	fd_.reset();
	unlink(path_.c_str());
}

void UndoJournal::append(const std::string &action, const std::string &arg) {
	if (arg.find('\n') != std::string::npos)
		fail(CLOUDLET_E_INTERNAL, "journal argument with a newline");
	std::string line = action + " " + arg + "\n";
	// One write: a process killed mid-call leaves the line whole or absent
	// (O_APPEND writes of a few hundred bytes to a local file are not split).
	if (write(fd_.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
		fail_errno("cannot write the undo journal " + path_, errno);
}

void UndoJournal::remove_path(const std::string &path) { append("remove", path); }
void UndoJournal::destroy_domain(const std::string &uuid) { append("destroy", uuid); }
void UndoJournal::resume_domain(const std::string &uuid) { append("resume", uuid); }

std::vector<JournalAction> read_journal(const std::string &path) {
	std::vector<JournalAction> out;
	std::string text = read_small_file(path, 1u << 20).value_or("");
	size_t at = 0;
	for (size_t nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) {
		std::string line = text.substr(at, nl - at);
		size_t sp = line.find(' ');
		if (sp == std::string::npos || sp + 1 >= line.size())
			continue;
		out.push_back({line.substr(0, sp), line.substr(sp + 1)});
	}
	return out;
}

} // namespace cloudlet::store
