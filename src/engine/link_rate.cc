#include "engine/link_rate.h"

#include "util/error.h"

#include <chrono>

namespace cloudlet::engine {

namespace {
double smooth(double before, double now) { return before > 0 ? 0.5 * before + 0.5 * now : now; }
} // namespace

void LinkRate::sent(uint64_t wire_bytes, uint64_t raw_bytes, Clock::time_point t) {
	if (sent_ == 0)
		first_send_ = window_start_ = t;
	sent_++;
	in_flight_.push_back({wire_bytes, raw_bytes});
}

bool LinkRate::acked(Clock::time_point t) {
	if (in_flight_.empty())
		fail(CLOUDLET_E_CORRUPT, "an ACK with no ITEMS frame in flight");
	last_ack_ = t;
	window_wire_ += in_flight_.front().wire;
	window_raw_ += in_flight_.front().raw;
	in_flight_.pop_front();
	acked_++;
	double w = seconds_between(window_start_, last_ack_);
	bool closed = false;
	if (!in_flight_.empty() && w >= kWindowSeconds) {
		link_bps_ = smooth(link_bps_, double(window_wire_) / w);
		window_raw_bps_ = double(window_raw_) / w;
		move_bps_ = smooth(move_bps_, window_raw_bps_);
		closed = true;
	}
	if (closed || in_flight_.empty()) {
		window_start_ = last_ack_; // idle: the next window starts fresh
		window_wire_ = window_raw_ = 0;
	}
	return closed;
}

void LinkRate::resumed(uint64_t applied, Clock::time_point t) {
	if (applied < acked_ || applied > sent_)
		fail(CLOUDLET_E_INTERNAL, "a resume past the frames sent");
	while (acked_ < applied) {
		in_flight_.pop_front();
		acked_++;
	}
	window_start_ = t;
	window_wire_ = window_raw_ = 0;
}

} // namespace cloudlet::engine
