// Progress reporting and cancellation for long operations, as seen from
// inside the library: one object the operation polls at its check points.
#pragma once

#include <cloudlet.h>

#include <atomic>
#include <mutex>
#include <string>

// The public cancel handle: a flag that any thread or a signal handler sets.
struct cloudlet_cancel {
	std::atomic<int> triggered{0};
};

namespace cloudlet {

class Progress {
public:
	Progress(cloudlet_progress_cb cb, void *userdata, cloudlet_cancel *cancel)
	    : cb_(cb), userdata_(userdata), cancel_(cancel) {}
	Progress() = default;

	// Reports progress; throws Error(CLOUDLET_E_CANCELLED) when the caller
	// asked to stop (callback returned non-zero or the cancel handle fired).
	// Serialised: safe to call from several worker threads.
	void report(const std::string &phase, uint64_t done, uint64_t total);

	// Throws Error(CLOUDLET_E_CANCELLED) if cancellation was requested.
	void check() const;
	bool cancelled() const;

private:
	cloudlet_progress_cb cb_ = nullptr;
	void *userdata_ = nullptr;
	cloudlet_cancel *cancel_ = nullptr;
	std::atomic<bool> stop_{false};
	std::mutex mu_;
};

} // namespace cloudlet
