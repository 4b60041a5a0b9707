// `snapshot capture`: the memory of a running (or paused) domain, taken by
// migrating it into a socket we own and parsing the stream as it arrives
// (docs/capture.md). Live: the VM keeps running through QEMU's iterative
// passes and pauses only for the final one. Output: a libvirt save image
// written by our own writer (one version of every page) or our memory image.
#pragma once

#include "ops/context.h"
#include "stream_parser.h"
#include "store/undo_journal.h"
#include "util/progress.h"
#include "virt/qemu_migration.h"

#include <cstdint>
#include <functional>
#include <string>

namespace cloudlet::ops {

enum class CaptureFormat { SaveImage, MemoryImage, Sink };

struct CaptureOptions {
	bool live = false;      // false: pause the VM for the whole capture
	bool stop = false;      // shut the domain off after a successful capture
	CaptureFormat format = CaptureFormat::SaveImage;
	// Internal (base creation copies disks next): a domain that was running
	// stays paused after success; the caller restores its state.
	bool keep_paused = false;
	// Internal, with CaptureFormat::Sink: pages go to this sink as they
	// arrive (called on the receiver thread) and no file is written.
	qemu::StreamSink *sink = nullptr;
	// Internal (handoff): QEMU's downtime limit for a live capture; 0: QEMU's own.
	uint64_t downtime_limit_ms = 0;
	// Internal (handoff): called with each status poll of a live capture
	// (every ≤ 50 ms) while it runs, to steer QEMU's migration. Best
	// effort: an Error it throws is logged and the capture goes on.
	std::function<void(virt::OutgoingMigration &, const virt::MigrationStatus &)> on_status;
	// Internal: the calling operation's undo journal, so that a VM it
	// pauses runs again if its process dies; null: the capture keeps one.
	store::UndoJournal *journal = nullptr;
};

struct CaptureResult {
	std::string path, domain_name, domain_uuid;
	bool was_running = false;     // run state before the capture
	std::string final_state;      // "running", "paused" or "shut off"
	uint64_t stream_bytes = 0;    // bytes QEMU sent
	uint64_t page_records = 0;    // page versions received (repeats included)
	uint64_t ram_sections = 0;
	uint64_t passes = 0;          // QEMU's dirty-sync count
	uint64_t total_pages = 0, data_pages = 0;
	uint64_t file_bytes = 0;      // size of what was written
	double seconds = 0;           // whole operation
	double downtime_ms = 0;       // how long QEMU kept the VM paused (live)
	// Live, keep_paused: how long the VM has been paused when the capture
	// returns (QEMU's downtime, then the end of the stream and the check).
	double paused_seconds = 0;
	qemu::StreamInfo stream;      // what the stream said (device state included)
	// Live TCG captures: the paused VM's RAM was compared with the stream's
	// newest page versions (docs/capture.md), and so many pages were wrong.
	bool checked = false;
	uint64_t corrected_pages = 0;
	double check_seconds = 0;
};

// Throws CLOUDLET_E_NOT_FOUND (no such domain), E_INVALID_ARG (not running
// or paused), E_BUSY (already migrating), E_LIBVIRT (QEMU failed),
// E_CORRUPT/E_UNSUPPORTED (a stream we cannot read), E_CANCELLED. On any
// failure the domain is back in its prior run state and no output exists.
CaptureResult snapshot_capture(Context &ctx, const std::string &domain, const std::string &path,
                               const CaptureOptions &opts, Progress &progress);

} // namespace cloudlet::ops
