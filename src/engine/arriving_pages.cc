#include "engine/arriving_pages.h"

#include "util/error.h"

#include <algorithm>

namespace cloudlet::engine {

ArrivingPages::ArrivingPages(uint64_t pages, const std::vector<uint8_t> &named)
    : pending_((pages + 7) / 8, 0) {
	std::copy_n(named.begin(), std::min(named.size(), pending_.size()), pending_.begin());
	if (pages % 8 && !pending_.empty())
		pending_.back() &= static_cast<uint8_t>((1u << (pages % 8)) - 1);
	for (uint8_t b : pending_)
		waiting_ += static_cast<uint64_t>(__builtin_popcount(b));
}

void ArrivingPages::arrived(uint64_t p) {
	std::lock_guard l(m_);
	if (p / 8 >= pending_.size() || !(pending_[p / 8] >> (p % 8) & 1))
		return; // not named, or already here
	pending_[p / 8] &= static_cast<uint8_t>(~(1u << (p % 8)));
	waiting_--;
	arrivals_.push_back(p);
	cv_.notify_all();
}

void ArrivingPages::complete() {
	std::lock_guard l(m_);
	if (waiting_)
		fail(CLOUDLET_E_CORRUPT, "the overlay ended with " + std::to_string(waiting_) +
		                             " of the memory pages its start block names still missing");
	complete_ = true;
	cv_.notify_all();
}

void ArrivingPages::abandon() {
	std::lock_guard l(m_);
	abandoned_ = true;
	cv_.notify_all();
}

bool ArrivingPages::ready(uint64_t p) const {
	std::lock_guard l(m_);
	return p / 8 >= pending_.size() || !(pending_[p / 8] >> (p % 8) & 1);
}

bool ArrivingPages::take(std::vector<uint64_t> &out) {
	std::lock_guard l(m_);
	out.insert(out.end(), arrivals_.begin(), arrivals_.end());
	arrivals_.clear();
	return complete_;
}

void ArrivingPages::wait(std::chrono::milliseconds d) {
	std::unique_lock l(m_);
	cv_.wait_for(l, d, [&] { return !arrivals_.empty() || complete_ || abandoned_; });
}

bool ArrivingPages::abandoned() const {
	std::lock_guard l(m_);
	return abandoned_;
}

uint64_t ArrivingPages::waiting() const {
	std::lock_guard l(m_);
	return waiting_;
}

} // namespace cloudlet::engine
