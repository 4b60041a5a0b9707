#include "engine/convergence.h"

#include <algorithm>
#include <cmath>

namespace cloudlet::engine {

std::optional<ThrottleSteps> throttle_steps(double dirty_bps, unsigned current_pct, double move_bps) {
	if (!(dirty_bps > 0) || !(move_bps > 0))
		return std::nullopt;
	current_pct = std::min(current_pct, 99u);
	// The rate was measured with the guest running (100 - current) % of the
	// time; unthrottled, it would dirty this much:
	double free_running = dirty_bps / ((100.0 - current_pct) / 100.0);
	// Running a fraction f of the time, it dirties f × free_running; aim
	// for half of what the pipeline moves, so passes shrink geometrically.
	double f = (move_bps / 2) / free_running;
	unsigned target = f >= 1 ? 0 : static_cast<unsigned>(std::ceil(100.0 * (1.0 - f)));
	ThrottleSteps s;
	s.initial = std::clamp(target, 20u, 99u);
	s.increment = target > current_pct ? std::clamp(target - current_pct, 10u, 99u) : 10u;
	if (current_pct == 0)
		s.increment = 10; // used only after the first step, which the next call revises
	return s;
}

} // namespace cloudlet::engine
