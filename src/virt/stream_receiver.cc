#include "virt/stream_receiver.h"

#include "byte_reader.h"

#include <sys/socket.h>

namespace cloudlet::virt {

namespace {

// Counts bytes as the thread pulls them, for progress and the result.
class CountingSource : public qemu::Source {
public:
	CountingSource(qemu::Source &inner, std::atomic<uint64_t> &count) : inner_(inner), count_(count) {}
	size_t read(uint8_t *buf, size_t n) override {
		size_t r = inner_.read(buf, n);
		count_.fetch_add(r, std::memory_order_relaxed);
		return r;
	}

private:
	qemu::Source &inner_;
	std::atomic<uint64_t> &count_;
};

// Counts the page versions passed on.
class CountingSink : public qemu::StreamSink {
public:
	explicit CountingSink(qemu::StreamSink &inner) : inner_(inner) {}
	void on_ram_blocks(const qemu::StreamInfo &i) override { inner_.on_ram_blocks(i); }
	void on_page(uint32_t block, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t section) override {
		records++;
		inner_.on_page(block, linear, data, fill, section);
	}
	uint64_t records = 0;

private:
	qemu::StreamSink &inner_;
};

} // namespace

void Wakeup::notify() {
	std::lock_guard lk(mu_);
	flag_ = true;
	cv_.notify_all();
}

void Wakeup::wait(std::chrono::milliseconds limit) {
	std::unique_lock lk(mu_);
	cv_.wait_for(lk, limit, [this] { return flag_; });
	flag_ = false;
}

StreamReceiver::StreamReceiver(int fd, std::string what, qemu::StreamSink &sink, Wakeup &wake)
    : fd_(fd), what_(std::move(what)), sink_(sink), wake_(wake) {
	thread_ = std::thread([this] { run(); });
}

StreamReceiver::~StreamReceiver() { abort_and_join(); }

bool StreamReceiver::wait(std::chrono::milliseconds limit) {
	std::unique_lock lk(mu_);
	return cv_.wait_for(lk, limit, [this] { return done_; });
}

bool StreamReceiver::done() {
	std::lock_guard lk(mu_);
	return done_;
}

bool StreamReceiver::failed() {
	std::lock_guard lk(mu_);
	return done_ && error_;
}

void StreamReceiver::abort_and_join() {
	if (thread_.joinable()) {
		shutdown(fd_, SHUT_RDWR); // wakes a blocked read with end of input
		thread_.join();
	}
}

void StreamReceiver::run() {
	try {
		qemu::FdSource fs(fd_, what_);
		CountingSource cs(fs, bytes_);
		qemu::Reader r(cs, what_);
		CountingSink counting(sink_);
		info_ = qemu::parse_stream(r, counting);
		records_ = counting.records;
	} catch (...) {
		error_ = std::current_exception();
		shutdown(fd_, SHUT_RDWR);
	}
	{
		std::lock_guard lk(mu_);
		done_ = true;
		cv_.notify_all();
	}
	wake_.notify();
}

} // namespace cloudlet::virt
