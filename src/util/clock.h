// The monotonic clock every timing figure of the library is measured with.
#pragma once

#include <chrono>

namespace cloudlet {

using Clock = std::chrono::steady_clock;

// Seconds since `t`, as the reports print them.
inline double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

} // namespace cloudlet
