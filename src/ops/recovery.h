// Recovery: undo what operations whose process died left in the store
// (docs/reliability.md). Runs at the start of every operation that uses the
// store, so the next run of any libcloudlet program cleans up after a killed
// one: work folders and undo journals (store/undo_journal.h) of dead owners.
#pragma once

#include "ops/context.h"

namespace cloudlet::ops {

struct RecoveryReport {
	unsigned journals = 0, work_dirs = 0;
	unsigned domains_destroyed = 0, domains_resumed = 0, paths_removed = 0;
};

// Best effort and idempotent; never throws (problems are logged). Skipped
// while another process is recovering the same store.
RecoveryReport recover_store(Context &ctx);

} // namespace cloudlet::ops
