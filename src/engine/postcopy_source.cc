#include "engine/postcopy_source.h"

#include "postcopy_stream.h"
#include "util/block_sigpipe.h"
#include "util/clock.h"
#include "util/error.h"

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace cloudlet::engine {

namespace {

// Background batches: 1 MiB of pages per section keeps QEMU's reader fed
// while a request waits behind at most that much.
constexpr size_t kBatchPages = 256;

// What the return-path thread tells the writer.
struct Shared {
	std::mutex m;
	std::condition_variable cv;
	std::deque<std::pair<uint64_t, uint64_t>> asked; // first page, count
	bool devices_loaded = false;
	bool shut = false, ended = false; // SHUT seen; return path ended (any way)
	uint32_t shut_value = 0;
	std::exception_ptr error;
	uint64_t requests = 0;
};

void read_return_path(int fd, const qemu::StreamInfo &layout, Shared &sh) {
	try {
		qemu::FdSource src(fd, "QEMU's return path");
		qemu::ReturnPathReader rp(src, layout);
		qemu::ReturnMessage msg;
		while (rp.next(msg)) {
			std::lock_guard lock(sh.m);
			if (msg.type == qemu::kRpPong && msg.value == qemu::kPingDevicesLoaded)
				sh.devices_loaded = true;
			else if (msg.type == qemu::kRpReqPages || msg.type == qemu::kRpReqPagesId) {
				sh.asked.emplace_back(msg.first_page, msg.pages);
				sh.requests++;
			} else if (msg.type == qemu::kRpShut) {
				sh.shut = true;
				sh.shut_value = msg.value;
				break;
			}
			sh.cv.notify_all();
		}
	} catch (...) {
		std::lock_guard lock(sh.m);
		sh.error = std::current_exception();
	}
	std::lock_guard lock(sh.m);
	sh.ended = true;
	sh.cv.notify_all();
}

// Counts what goes into the socket.
class CountingSink : public qemu::ByteSink {
public:
	explicit CountingSink(int fd) : sink_(fd, "the postcopy migration socket") {}
	void write(const uint8_t *d, size_t n) override {
		sink_.write(d, n);
		bytes += n;
	}
	void flush() { sink_.flush(); }
	uint64_t bytes = 0;

private:
	qemu::FdSink sink_;
};

} // namespace

PostcopyStats serve_postcopy(int fd, const qemu::PageProvider &img, const std::function<void()> &on_devices_loaded,
                             const std::function<void()> &abandon, Progress &progress, ArrivingPages *arrivals) {
	auto ready = [&](uint64_t p) { return !arrivals || arrivals->ready(p); };
	auto t0 = Clock::now();
	const qemu::StreamInfo &layout = img.stream_info();
	PostcopyStats st;
	Shared sh;
	std::thread reader([&] { read_return_path(fd, layout, sh); });
	struct Join {
		std::thread &t;
		int fd;
		~Join() {
			if (t.joinable()) {
				shutdown(fd, SHUT_RDWR); // wakes the reader if we leave early
				t.join();
			}
		}
	} join{reader, fd};

	// A QEMU that stopped reading fails our writes; its reason is on the
	// return path (or the socket is just closed).
	auto qemu_failed = [&](const std::string &when) {
		std::unique_lock lock(sh.m);
		sh.cv.wait_for(lock, std::chrono::seconds(2), [&] { return sh.ended; });
		if (sh.error)
			std::rethrow_exception(sh.error);
		fail(CLOUDLET_E_LIBVIRT, "QEMU ended the postcopy migration " + when +
		                             (sh.shut ? " (it reported a failure)" : " (it closed the socket)"));
	};

	BlockSigpipe no_sigpipe; // a QEMU gone fails our writes with EPIPE
	CountingSink out(fd);
	qemu::PostcopyWriter w(out, layout);
	std::vector<uint8_t> sent(layout.total_pages, 0);
	try {
		w.begin();
		w.start(layout.device_state);
		out.flush();
	} catch (const Error &e) {
		if (e.status() == CLOUDLET_E_IO)
			qemu_failed("before the device state");
		throw;
	}

	bool resumed = false;
	std::thread starter;
	std::exception_ptr start_error;
	// Leaving early with the start under way: QEMU may never answer it (its
	// main loop waits for pages nobody sends now), so the caller's `abandon`
	// ends QEMU first.
	struct JoinStarter {
		std::thread &t;
		const std::function<void()> &abandon;
		~JoinStarter() {
			if (t.joinable()) {
				try {
					abandon();
				} catch (...) {
				}
				t.join();
			}
		}
	} join_starter{starter, abandon};
	uint64_t cursor = 0;
	std::vector<uint64_t> batch;
	std::vector<uint64_t> held;     // asked for, not arrived yet
	std::vector<uint64_t> arrived;  // arrived after the cursor may have passed them
	size_t arrived_at = 0;
	bool all_arrived = !arrivals;
	try {
		for (;;) {
			progress.check();
			if (arrivals && arrivals->abandoned())
				fail(CLOUDLET_E_CANCELLED, "the overlay stopped arriving");
			batch.clear();
			// Held requests whose pages are here now go first.
			if (!held.empty()) {
				std::vector<uint64_t> still;
				for (uint64_t p : held)
					if (sent[p])
						continue;
					else if (ready(p)) {
						sent[p] = 1;
						batch.push_back(p);
					} else
						still.push_back(p);
				held.swap(still);
			}
			bool loaded = false;
			{
				std::unique_lock lock(sh.m);
				// Until the devices have loaded, only what QEMU asks for (device
				// loading may touch guest RAM) goes out: nothing is gained by
				// racing ahead of the package, and requests must not wait.
				if (!sh.devices_loaded)
					sh.cv.wait_for(lock, std::chrono::milliseconds(100),
					               [&] { return sh.devices_loaded || !sh.asked.empty() || sh.ended; });
				if (sh.ended && !sh.shut)
					break; // handled below
				while (!sh.asked.empty() && batch.size() < kBatchPages) {
					auto &[first, count] = sh.asked.front();
					for (uint64_t p = first; p < first + count; p++) {
						if (sent[p])
							st.already_sent++;
						else if (!ready(p)) {
							held.push_back(p);
							st.held_pages++;
						} else {
							sent[p] = 1;
							batch.push_back(p);
						}
					}
					sh.asked.pop_front();
				}
				loaded = sh.devices_loaded;
			}
			st.demand_pages += batch.size();
			if (!batch.empty()) {
				std::sort(batch.begin(), batch.end());
				w.pages(img, batch);
				out.flush();
				continue; // more requests first
			}
			if (loaded && !resumed) {
				// On its own thread: resuming waits for QEMU's main loop, which
				// may itself fault on pages only this thread can send.
				st.devices_loaded_seconds = since(t0);
				starter = std::thread([&] {
					try {
						on_devices_loaded();
					} catch (...) {
						start_error = std::current_exception();
					}
				});
				resumed = true;
			}
			if (!loaded)
				continue;
			// The background: the next data pages in linear order, never
			// past a block's end in one section (the writer names blocks).
			// Pages not arrived yet are left for when they do.
			while (cursor < layout.total_pages && batch.size() < kBatchPages) {
				if (!sent[cursor] && ready(cursor) && img.page(cursor)) {
					sent[cursor] = 1;
					batch.push_back(cursor);
				}
				cursor++;
			}
			// Behind the cursor: the pages that arrived since (in arrival order).
			if (cursor == layout.total_pages && arrivals) {
				if (arrived_at == arrived.size()) {
					arrived.clear();
					arrived_at = 0;
					all_arrived = arrivals->take(arrived);
				}
				while (arrived_at < arrived.size() && batch.size() < kBatchPages) {
					uint64_t p = arrived[arrived_at++];
					if (!sent[p] && img.page(p)) {
						sent[p] = 1;
						batch.push_back(p);
					}
				}
			}
			if (batch.empty()) {
				if (all_arrived && arrived_at == arrived.size())
					break; // every data page sent
				arrivals->wait(std::chrono::milliseconds(20));
				continue;
			}
			st.background_pages += batch.size();
			w.pages(img, batch);
			out.flush();
			progress.report("postcopy", cursor, layout.total_pages);
		}
		{
			std::lock_guard lock(sh.m);
			if (sh.ended && !sh.shut) {
				if (sh.error)
					std::rethrow_exception(sh.error);
				fail(CLOUDLET_E_LIBVIRT, "QEMU closed the postcopy migration before it ended");
			}
		}
		w.end();
		out.flush();
	} catch (const Error &e) {
		if (e.status() == CLOUDLET_E_IO)
			qemu_failed("while pages were still being sent");
		throw;
	}
	st.bytes = out.bytes;

	// QEMU says SHUT 0 once its listen thread loaded everything.
	{
		std::unique_lock lock(sh.m);
		while (!sh.ended) {
			lock.unlock();
			progress.check();
			lock.lock();
			sh.cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return sh.ended; });
		}
		if (sh.error)
			std::rethrow_exception(sh.error);
		if (!sh.shut)
			fail(CLOUDLET_E_LIBVIRT, "QEMU closed the postcopy migration without confirming its end");
		if (sh.shut_value != 0)
			fail(CLOUDLET_E_LIBVIRT, "QEMU reported that loading the postcopy migration failed");
		st.requests = sh.requests;
	}
	reader.join();
	if (starter.joinable())
		starter.join();
	if (start_error)
		std::rethrow_exception(start_error);
	st.seconds = since(t0);
	return st;
}

} // namespace cloudlet::engine
