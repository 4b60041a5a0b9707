// The receiving end of an outgoing migration into our socket: a thread that
// parses QEMU's stream as it arrives and hands every page to a sink, while
// the calling thread watches QEMU (virt/migration_capture.h). On a parse
// error it shuts the socket, so QEMU's writes fail and the migration ends.
#pragma once

#include "stream_parser.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

namespace cloudlet::virt {

// Wakes the watching thread early: the receiver finished, or QEMU reported
// a migration state change.
class Wakeup {
public:
	void notify();
	// Returns at the first notify() since the last wait, or after `limit`.
	void wait(std::chrono::milliseconds limit);

private:
	std::mutex mu_;
	std::condition_variable cv_;
	bool flag_ = false;
};

class StreamReceiver {
public:
	// Starts the thread: the stream read from `fd` (which the caller keeps
	// open until the receiver is gone), each page version given to `sink` on
	// the thread. `what` names the stream in errors. `wake` is notified when
	// the thread ends.
	StreamReceiver(int fd, std::string what, qemu::StreamSink &sink, Wakeup &wake);
	~StreamReceiver(); // abort_and_join()
	StreamReceiver(const StreamReceiver &) = delete;
	StreamReceiver &operator=(const StreamReceiver &) = delete;

	// Waits up to `limit` for the thread to finish; true if it did.
	bool wait(std::chrono::milliseconds limit);
	bool done();
	bool failed(); // done, with an error
	// Ends the thread now (a blocked read sees the end of input) and joins it.
	void abort_and_join();

	// After the thread ended: why it failed (null if it did not), what the
	// stream said, the bytes read and the page versions given to the sink.
	std::exception_ptr error() const { return error_; }
	const qemu::StreamInfo &info() const { return info_; }
	uint64_t bytes() const { return bytes_.load(); }
	uint64_t records() const { return records_; }

private:
	void run();

	int fd_;
	std::string what_;
	qemu::StreamSink &sink_;
	Wakeup &wake_;
	std::mutex mu_;
	std::condition_variable cv_;
	bool done_ = false;
	std::exception_ptr error_;
	qemu::StreamInfo info_;
	std::atomic<uint64_t> bytes_{0};
	uint64_t records_ = 0;
	std::thread thread_; // last: starts once everything above exists
};

} // namespace cloudlet::virt
