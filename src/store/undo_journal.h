// An operation's undo journal: what it created or changed that must not
// outlive it if its process dies (SIGKILL, crash) before it either completes
// or undoes that itself. The file lives in <store>/tmp/, its name carries the
// owner's process tag (store/owner.h); ops/recovery.h replays journals whose
// owner is dead. Ordinary failures never need it: operations clean up after
// themselves, then the journal goes with the operation.
//
// Format (docs/reliability.md): one action per line, "<action> <argument>\n",
// appended with one write() each; a torn last line is ignored.
//   remove <path>     a file or folder the operation creates
//   destroy <uuid>    a domain it starts (its own instance)
//   resume <uuid>     a domain it pauses (someone else's VM, or the source)
#pragma once

#include "util/unique_fd.h"

#include <string>
#include <vector>

namespace cloudlet::store {

class UndoJournal {
public:
	UndoJournal(const std::string &store_root, const std::string &operation);
	~UndoJournal(); // the operation is over: the journal goes
	UndoJournal(const UndoJournal &) = delete;
	UndoJournal &operator=(const UndoJournal &) = delete;

	void remove_path(const std::string &path);
	void destroy_domain(const std::string &uuid);
	void resume_domain(const std::string &uuid);
	const std::string &path() const { return path_; }

private:
	void append(const std::string &action, const std::string &arg);
	std::string path_;
	UniqueFd fd_;
};

struct JournalAction {
	std::string action, arg;
};
// The complete lines of a journal file (bounded: a journal is small).
std::vector<JournalAction> read_journal(const std::string &path);

} // namespace cloudlet::store
