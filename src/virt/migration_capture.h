// Migration capture: the memory and device state of a running or paused
// domain, taken by migrating it into a socket we own and parsing the stream
// as it arrives (docs/capture.md). The engine behind `snapshot capture`
// (files), base create (a memory image), overlay create (pages deduplicated
// as they come) and handoff send (pages sent on as they come): each gives
// its own qemu::StreamSink and decides what becomes of the pages.
//
//   socketpair ─ getfd + migrate fd:… (virt/qemu_migration.h) ─ QEMU sends
//   receiver thread: parse the stream into the sink (virt/stream_receiver.h)
//   this thread: query-migrate every ≤ 50 ms — progress "capture", cancel,
//                the caller's steering — until QEMU ends
//   live TCG guest: the paused RAM checked against the stream (virt/ram_check.h)
#pragma once

#include "stream_parser.h"
#include "util/log.h"
#include "util/progress.h"
#include "virt/qemu_migration.h"

#include <cstdint>
#include <functional>

namespace cloudlet::virt {

struct MigrationCaptureOptions {
	// false: the VM is paused for the whole capture (one version of each
	// page); true: it runs through QEMU's passes and QEMU pauses it for the
	// last one.
	bool live = false;
	// Live: QEMU's downtime limit; 0: QEMU's own.
	uint64_t downtime_limit_ms = 0;
	// Live or not: called with each status poll (every ≤ 50 ms) while QEMU
	// migrates, to steer it (auto-converge's steps ...). Best effort: an
	// Error it throws is logged and the capture goes on.
	std::function<void(OutgoingMigration &, const MigrationStatus &)> on_status;
};

struct MigrationCapture {
	uint64_t stream_bytes = 0; // bytes QEMU sent
	uint64_t page_records = 0; // page versions the sink got from the stream (repeats included)
	uint64_t passes = 0;       // QEMU's dirty-sync count
	double downtime_ms = 0;    // how long QEMU kept the VM paused for its final pass (live)
	qemu::StreamInfo stream;   // what the stream said, device state included
	double seconds = 0;        // the capture, from the call
	// How long the VM has been paused when the capture returns (live:
	// QEMU's downtime, then the end of the stream and the check).
	double paused_seconds = 0;
	// Live captures of TCG guests: the paused VM's RAM was compared with
	// the stream's newest page versions, and so many pages were wrong (they
	// went to the sink once more, after the stream's own).
	bool checked = false;
	uint64_t corrected_pages = 0;
	double check_seconds = 0;
};

// Captures `dom` (not owned), which the caller found running
// (`was_running`) or paused, into `sink` (called on the receiver thread).
// A running VM is paused: by us first, or live by QEMU for its final pass;
// so before calling, make sure it runs again should this process die
// (store::UndoJournal::resume_domain).
//
// On success the VM is left paused, and the caller gives it back
// (virt::release, virt::restore_run_state) once it has what it needs — the
// disks of a paused VM are one instant with its memory. On failure the
// domain is back in its prior run state. Throws E_BUSY (already migrating,
// or paused in QEMU's post-migration state), E_LIBVIRT (QEMU failed),
// E_CORRUPT/E_UNSUPPORTED (a stream we cannot read), E_CANCELLED, or what
// the sink threw.
MigrationCapture capture_migration(virDomainPtr dom, bool was_running, qemu::StreamSink &sink,
                                   const MigrationCaptureOptions &opts, Progress &progress, const Logger &log);

} // namespace cloudlet::virt
