// The monotonic clock every timing figure of the library is measured with.
#pragma once

#include <chrono>

namespace cloudlet {

using Clock = std::chrono::steady_clock;

// Seconds since `t`, as the reports print them.
inline double seconds_between(Clock::time_point from, Clock::time_point to) {
	return std::chrono::duration<double>(to - from).count();
}
inline double since(Clock::time_point t) { return seconds_between(t, Clock::now()); }

} // namespace cloudlet
