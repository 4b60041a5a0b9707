// The link's rate as a handoff's ACKs pace it (docs/handoff.md): the bytes
// of ITEMS frames acknowledged per second over windows of at least half a
// second, smoothed (half the new window, half what was before). Only while
// more frames are in flight does an ACK's pace measure the link: when the
// last frame is acknowledged the link went idle, and the next window starts
// fresh. The same windows over the bytes before compression give what the
// pipeline delivers, which QEMU's dirty rate is weighed against. Times are
// passed in, so a test can replay an ACK sequence; not thread-safe.
#pragma once

#include "util/clock.h"

#include <cstdint>
#include <deque>

namespace cloudlet::engine {

class LinkRate {
public:
	static constexpr double kWindowSeconds = 0.5;

	// An ITEMS frame went out at `t`: `wire_bytes` on the wire (its frame
	// overhead included), `raw_bytes` before compression.
	void sent(uint64_t wire_bytes, uint64_t raw_bytes, Clock::time_point t);
	// The ACK of the oldest frame in flight arrived at `t`. True when it
	// closed a window: link_bps(), move_bps() and window_raw_bps() are new.
	// CLOUDLET_E_CORRUPT when no frame is in flight.
	bool acked(Clock::time_point t);

	// A resumed connection (docs/protocols/handoff.md "Resume") at `t`:
	// the destination had applied `applied` frames (>= frames_acked(), <=
	// frames_sent()); they count as acknowledged without measuring the link,
	// the rest go out again, and the next window starts at `t`.
	void resumed(uint64_t applied, Clock::time_point t);

	uint64_t frames_sent() const { return sent_; }
	uint64_t frames_acked() const { return acked_; }
	double link_bps() const { return link_bps_; }             // wire bytes/s; 0: not measured yet
	double move_bps() const { return move_bps_; }             // bytes before compression/s, smoothed
	double window_raw_bps() const { return window_raw_bps_; } // the last window's, unsmoothed
	Clock::time_point first_send() const { return first_send_; }
	Clock::time_point last_ack() const { return last_ack_; }

private:
	struct InFlight {
		uint64_t wire, raw;
	};
	std::deque<InFlight> in_flight_;
	uint64_t sent_ = 0, acked_ = 0;
	Clock::time_point first_send_{}, last_ack_{}, window_start_{};
	uint64_t window_wire_ = 0, window_raw_ = 0;
	double link_bps_ = 0, move_bps_ = 0, window_raw_bps_ = 0;
};

} // namespace cloudlet::engine
