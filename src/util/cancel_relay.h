// Carries a caller's cancellation to a wait that does not poll Progress:
// a read blocked on the network, for one. While it lives, a thread checks
// the Progress every 50 ms and, the first time it is cancelled, calls
// `wake` (e.g. HttpSource::cancel(), which makes the blocked read throw
// CLOUDLET_E_CANCELLED). Without it a cancel waits for the next byte or the
// stall timeout (found with Nova deleting a server during a slow synthesis).
#pragma once

#include "util/progress.h"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace cloudlet {

class CancelRelay {
public:
	CancelRelay(const Progress &progress, std::function<void()> wake)
	    : progress_(progress), wake_(std::move(wake)), thread_([this] { run(); }) {}
	~CancelRelay() {
		{
			std::lock_guard<std::mutex> lock(mu_);
			done_ = true;
		}
		cv_.notify_one();
		thread_.join();
	}
	CancelRelay(const CancelRelay &) = delete;
	CancelRelay &operator=(const CancelRelay &) = delete;

private:
	void run() {
		std::unique_lock<std::mutex> lock(mu_);
		while (!cv_.wait_for(lock, std::chrono::milliseconds(50), [this] { return done_; }))
			if (progress_.cancelled()) {
				wake_();
				return;
			}
	}

	const Progress &progress_;
	std::function<void()> wake_;
	std::mutex mu_;
	std::condition_variable cv_;
	bool done_ = false;
	std::thread thread_; // last: starts once the rest exists
};

} // namespace cloudlet
