// `snapshot capture`: the memory of a running (or paused) domain into a
// file, taken by the migration capture (virt/migration_capture.h,
// docs/capture.md). Live: the VM keeps running through QEMU's iterative
// passes and pauses only for the final one. Output: a libvirt save image
// written by our own writer (one version of every page) or our memory image.
#pragma once

#include "ops/context.h"
#include "util/progress.h"

#include <cstdint>
#include <string>

namespace cloudlet::ops {

enum class CaptureFormat { SaveImage, MemoryImage };

struct CaptureOptions {
	bool live = false;      // false: pause the VM for the whole capture
	bool stop = false;      // shut the domain off after a successful capture
	CaptureFormat format = CaptureFormat::SaveImage;
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
};

// Throws CLOUDLET_E_NOT_FOUND (no such domain), E_INVALID_ARG (not running
// or paused), E_BUSY (already migrating), E_LIBVIRT (QEMU failed),
// E_CORRUPT/E_UNSUPPORTED (a stream we cannot read), E_CANCELLED. On any
// failure the domain is back in its prior run state and no output exists.
CaptureResult snapshot_capture(Context &ctx, const std::string &domain, const std::string &path,
                               const CaptureOptions &opts, Progress &progress);

} // namespace cloudlet::ops
