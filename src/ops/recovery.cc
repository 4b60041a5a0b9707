#include "ops/recovery.h"

#include "store/base_store.h"
#include "store/owner.h"
#include "store/undo_journal.h"
#include "util/error.h"
#include "util/unique_fd.h"
#include "virt/connection.h"
#include "virt/domain.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace cloudlet::ops {

namespace {

struct Entry {
	std::string name;
	store::ProcessId owner;
};

// Entries of tmp/ whose owner died.
std::vector<Entry> orphans(const std::string &tmp) {
	std::vector<Entry> out;
	DIR *d = opendir(tmp.c_str());
	if (!d)
		return out;
	while (dirent *e = readdir(d)) {
		std::string name = e->d_name;
		Entry x{name, {}};
		if (name != "." && name != ".." && store::parse_process_tag(name, &x.owner) && !store::alive(x.owner))
			out.push_back(x);
	}
	closedir(d);
	return out;
}

void replay(Context &ctx, const std::string &journal, RecoveryReport &r) {
	std::vector<store::JournalAction> actions = store::read_journal(journal);
	const Logger &log = ctx.log();
	// Domains first (a started instance goes before its folder), then paths.
	// No connection to libvirt: throws, and the journal stays for a later run.
	std::shared_ptr<virt::Connection> conn;
	for (const auto &a : actions) {
		if (a.action != "destroy" && a.action != "resume")
			continue;
		if (!conn)
			conn = ctx.connection();
		// Each action on its own: a domain that vanishes meanwhile (its own
		// teardown was under way) does not stop the others.
		try {
			virt::DomainPtr dom = virt::find_domain_by_uuid(*conn, a.arg);
			if (!dom)
				continue;
			if (a.action == "destroy") {
				virt::destroy_and_undefine(dom.get());
				r.domains_destroyed++;
				log.info("recovery: destroyed domain " + a.arg + ", started by an operation that died");
			} else if (virt::is_active(dom.get()) && virt::run_state(dom.get()).paused()) {
				virt::restore_run_state(dom.get(), true, log);
				r.domains_resumed++;
				log.info("recovery: resumed domain " + a.arg + ", paused by an operation that died");
			}
		} catch (const std::exception &e) {
			log.warn("recovery: " + a.action + " " + a.arg + ": " + e.what());
		}
	}
	for (const auto &a : actions) {
		if (a.action != "remove")
			continue;
		if (access(a.arg.c_str(), F_OK) == 0) {
			store::remove_tree(a.arg);
			r.paths_removed++;
			log.info("recovery: removed " + a.arg + ", left by an operation that died");
		}
	}
}

} // namespace

RecoveryReport recover_store(Context &ctx) {
	RecoveryReport r;
	try {
		store::BaseStore st(ctx.settings().store_dir);
		std::string tmp = st.root() + "/tmp";
		std::vector<Entry> dead = orphans(tmp);
		if (dead.empty())
			return r;
		UniqueFd lock(open((st.root() + "/.recover.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
		if (!lock)
			return r;
		if (flock(lock.get(), LOCK_EX | LOCK_NB) != 0)
			return r; // another process is at it
		for (const auto &e : orphans(tmp)) { // again, under the lock
			std::string path = tmp + "/" + e.name;
			try {
				if (e.name.rfind("journal-", 0) == 0) {
					replay(ctx, path, r);
					unlink(path.c_str());
					r.journals++;
				} else {
					store::remove_tree(path);
					r.work_dirs++;
				}
			} catch (const std::exception &x) {
				ctx.log().warn("recovery of " + path + " waits for a later run: " + x.what());
			}
		}
	} catch (const std::exception &e) {
		ctx.log().error(std::string("recovery of the store failed: ") + e.what());
	}
	return r;
}

} // namespace cloudlet::ops
