// An outgoing QEMU migration into a file descriptor we own, driven over QMP
// (libvirt's monitor passthrough): the adapter behind live capture and,
// later, handoff. It knows QMP's migration commands and nothing about what
// is done with the bytes.
//
// QEMU runs as its own user and cannot open our files, so the write end of
// a socket pair is handed to it with `getfd` (SCM_RIGHTS through libvirt)
// and `migrate` is told "fd:<name>". Host permissions stay as they are.
#pragma once

#include "virt/qmp_client.h"

#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet::virt {

struct MigrationStatus {
	std::string status;   // QEMU's: "setup", "active", "device", "completed", "failed", "cancelled" ...
	std::string error;    // QEMU's error-desc when failed
	uint64_t transferred = 0, remaining = 0, total = 0; // RAM bytes
	uint64_t dirty_sync_count = 0; // passes over RAM so far
	uint64_t dirty_pages_rate = 0; // pages/s
	uint64_t downtime_ms = 0;      // VM paused for the final pass (once completed)
	unsigned cpu_throttle_pct = 0; // auto-converge's current vCPU throttle (0: none)
	bool terminal() const { return status == "completed" || status == "failed" || status == "cancelled"; }
};

// The arguments of QMP `migrate-set-capabilities` setting each named
// capability on or off (both directions of a migration use it).
qemu::JsonPtr capability_args(const std::vector<std::pair<std::string, bool>> &caps);

class OutgoingMigration {
public:
	// Does not own the domain reference.
	explicit OutgoingMigration(virDomainPtr dom);
	// Puts back capabilities and parameters it changed (best effort), and
	// releases the fd in QEMU if migrate never took it.
	~OutgoingMigration();
	OutgoingMigration(const OutgoingMigration &) = delete;
	OutgoingMigration &operator=(const OutgoingMigration &) = delete;

	// Turns off what would make the stream one we cannot parse (xbzrle,
	// compression, multifd, postcopy, return path ...), lifts the bandwidth
	// limit (a local fd, not a network), and optionally turns on
	// auto-converge. Remembers previous values for the destructor.
	// `downtime_limit_ms` > 0: QEMU's downtime limit (it stops iterating
	// once what is left fits that long at its measured bandwidth).
	void prepare(bool auto_converge, uint64_t downtime_limit_ms = 0);

	// Hands `fd` to QEMU (QEMU gets its own copy; the caller keeps and
	// closes `fd`) and starts the migration into it. Returns immediately.
	void start(int fd);

	MigrationStatus status();
	// Auto-converge's steps (QEMU's cpu-throttle-initial and -increment,
	// 1..99); takes effect at QEMU's next throttle decision. The previous
	// values come back in the destructor.
	void set_throttle_steps(unsigned initial, unsigned increment);
	// Asks QEMU to stop the migration; QEMU resumes a VM it had paused for
	// the final pass.
	void cancel();

private:
	QmpClient qmp_;
	virDomainPtr dom_;
	std::string fd_name_;
	bool fd_in_qemu_ = false, started_ = false;
	std::vector<std::pair<std::string, bool>> saved_caps_;
	bool saved_bandwidth_ = false, saved_downtime_ = false, saved_throttle_ = false;
	int64_t old_bandwidth_ = 0, old_downtime_ = 0, old_throttle_initial_ = 20, old_throttle_increment_ = 10;
};

} // namespace cloudlet::virt
