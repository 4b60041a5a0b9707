#include "util/progress.h"

#include "util/error.h"

namespace cloudlet {

bool Progress::cancelled() const {
	return stop_.load() || (cancel_ && cancel_->triggered.load());
}

void Progress::check() const {
	if (cancelled())
		fail(CLOUDLET_E_CANCELLED, "cancelled by the caller");
}

void Progress::report(const std::string &phase, uint64_t done, uint64_t total) {
	if (cb_) {
		std::lock_guard<std::mutex> lock(mu_);
		if (cb_(phase.c_str(), done, total, userdata_) != 0)
			stop_ = true;
	}
	check();
}

} // namespace cloudlet
