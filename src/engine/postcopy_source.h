// The migration source of a postcopy restore (docs/early-start.md): QEMU
// runs the guest once the device state has loaded, and every page it does
// not hold yet faults until we send it. Pages QEMU asks for on the return
// path go out next; the others follow in linear order behind them. A page
// goes at most once (QEMU refuses a second copy); zero pages are never
// sent unless asked for, since QEMU's RAM is empty and reads as zero
// once the migration ends.
#pragma once

#include "engine/arriving_pages.h"
#include "image_file.h"
#include "util/progress.h"

#include <cstdint>
#include <functional>

namespace cloudlet::engine {

struct PostcopyStats {
	uint64_t requests = 0;         // REQ_PAGES messages from QEMU
	uint64_t demand_pages = 0;     // pages sent because QEMU asked for them
	uint64_t already_sent = 0;     // asked for, but already on their way
	uint64_t background_pages = 0; // pages sent in order (or as they arrived)
	uint64_t held_pages = 0;       // asked for before the overlay had delivered them: they waited for it
	uint64_t bytes = 0;            // stream bytes written
	double devices_loaded_seconds = 0; // from the start until QEMU loaded the device state
	double seconds = 0;                // until QEMU confirmed the end
};

// Writes the postcopy stream of `img` into `fd` (a socket whose other end
// QEMU migrates in from) and reads QEMU's return path from it.
// `on_devices_loaded` runs, on a thread of its own, once QEMU has loaded the
// device state (from then on the guest may run: the caller resumes it);
// pages are served meanwhile, since QEMU may fault while it starts the
// guest. `abandon` ends QEMU when this returns early (a failure, a cancel)
// while `on_devices_loaded` still runs: it may wait for QEMU forever
// otherwise. Returns after QEMU reported
// that it loaded everything. Throws CLOUDLET_E_LIBVIRT when QEMU ends the
// migration as failed (its socket closes or it reports a failure), the
// return path's own errors as they are (CLOUDLET_E_CORRUPT), and
// CLOUDLET_E_CANCELLED on cancel (checked between sections).
//
// `arrivals` (may be null: every page of `img` is final): a page it does
// not call ready waits, asked for or not, until it arrives; the others go
// at once. The end comes once it is complete and every page has gone; its
// abandon() ends this with CLOUDLET_E_CANCELLED.
PostcopyStats serve_postcopy(int fd, const qemu::PageProvider &img, const std::function<void()> &on_devices_loaded,
                             const std::function<void()> &abandon, Progress &progress,
                             ArrivingPages *arrivals = nullptr);

} // namespace cloudlet::engine
