// When a live handoff cannot converge: how hard QEMU's auto-converge should
// throttle the guest's vCPUs, from the guest's dirty rate and the rate our
// pipeline moves page data to the destination.
//
// QEMU's defaults (start at 20 %, add 10 % each time two passes in a row
// dirtied more than half of what they sent) suit data-centre links: every
// step costs two passes, and on a 25 Mbit/s WAN a pass over a guest that
// keeps rewriting a few MiB costs seconds and those MiB again. Here the
// first step goes straight to the throttle at which the guest dirties no
// more than half of what the link moves, and later steps close the rest of
// the gap at once. A guest that dirties slowly is never throttled (QEMU's
// trigger is unchanged); the throttle only ever rises (QEMU never lowers it
// during a migration). docs/handoff.md, "When to stop iterating".
#pragma once

#include <cstdint>
#include <optional>

namespace cloudlet::engine {

struct ThrottleSteps {
	unsigned initial = 20;   // QEMU's cpu-throttle-initial (1..99)
	unsigned increment = 10; // QEMU's cpu-throttle-increment (1..99)
	bool operator==(const ThrottleSteps &) const = default;
};

// `dirty_bytes_per_s`: QEMU's dirty-pages-rate × page size, measured with
// the throttle at `current_pct` (0: none); `move_bytes_per_s`: page data
// the pipeline delivered per second (uncompressed). Nothing known yet
// (either rate 0): no opinion. Otherwise the steps that take the throttle
// to the target in one trigger, never below QEMU's defaults.
std::optional<ThrottleSteps> throttle_steps(double dirty_bytes_per_s, unsigned current_pct, double move_bytes_per_s);

} // namespace cloudlet::engine
