#include "virt/migration_capture.h"

#include "stream_writer.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/unique_fd.h"
#include "virt/domain.h"
#include "virt/ram_check.h"
#include "virt/stream_receiver.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>

namespace cloudlet::virt {

namespace {

// The RAM cannot be read (CLOUDLET_E_UNSUPPORTED): the capture goes on,
// unchecked, and says so. Called inside a handler: any other error is
// rethrown as caught.
void warn_unchecked(const Error &e, const Logger &log) {
	if (e.status() != CLOUDLET_E_UNSUPPORTED)
		throw;
	log.warn(std::string("the pages QEMU sent cannot be checked against the paused VM, and QEMU "
	                     "before 9.0 can lose guest writes in a live migration under TCG: ") +
	         e.what());
}

// One capture's moving parts, set up in this order and torn down in
// reverse: QEMU's migration (its old settings come back last), our end of
// the socket, the check, the receiver thread, the event subscription.
class Session {
public:
	// Prepares QEMU, starts it migrating into our socket and the receiver
	// reading from it.
	Session(virDomainPtr dom, const std::string &name, qemu::StreamSink &sink, const MigrationCaptureOptions &opts,
	        Progress &progress, const Logger &log);
	// Polls QEMU until its migration ends: progress, cancel, the caller's
	// steering, and locating the RAM to check while QEMU's monitor answers.
	void watch();
	// After watch(): throws whichever failure caused the others; else runs
	// the check and fills in the figures.
	void finish(MigrationCapture &res);
	Clock::time_point ended_at() const { return ended_at_; } // when QEMU's migration ended

private:
	void subscribe();

	virDomainPtr dom_;
	const std::string &name_;
	const MigrationCaptureOptions &opts_;
	Progress &progress_;
	const Logger &log_;
	OutgoingMigration mig_;
	UniqueFd ours_;
	Wakeup wake_;
	bool check_ = false, ram_located_ = false;
	std::optional<RamCheck> ram_check_;
	std::optional<StreamReceiver> rx_;
	std::unique_ptr<QmpEventSubscription> events_;
	MigrationStatus st_;
	bool cancelled_ = false;
	bool rx_failed_first_ = false; // the receiver failed before QEMU ended
	Clock::time_point ended_at_ = Clock::now();
};

Session::Session(virDomainPtr dom, const std::string &name, qemu::StreamSink &sink,
                 const MigrationCaptureOptions &opts, Progress &progress, const Logger &log)
    : dom_(dom), name_(name), opts_(opts), progress_(progress), log_(log), mig_(dom) {
	mig_.prepare(opts.live, opts.downtime_limit_ms);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		fail_errno("socketpair", errno);
	ours_.reset(sv[0]);
	UniqueFd theirs(sv[1]);
	mig_.start(theirs.get());
	theirs.reset(); // QEMU holds its own copy; ours must go for EOF to arrive
	log.info("capture of " + name + ": QEMU is migrating into our socket");

	// A live capture of a TCG guest is checked against the paused VM
	// after QEMU is done (virt/guest_ram.h: QEMU < 9.0 loses dirty pages).
	check_ = opts.live && virt_type(dom) == "qemu";
	if (check_)
		ram_check_.emplace(sink);
	rx_.emplace(ours_.get(), "migration stream of domain " + name,
	            ram_check_ ? static_cast<qemu::StreamSink &>(*ram_check_) : sink, wake_);
	subscribe();
}

void Session::subscribe() {
	// QEMU's MIGRATION events end the 50 ms wait at once; polling stays
	// the source of truth (events need the caller's or our event loop).
	// STOP starts the check's hashing beside QEMU's final pass.
	try {
		events_ = QmpClient(dom_).subscribe("", [this](const qemu::QmpEvent &e) {
			if (e.name == "MIGRATION") {
				log_.debug("QEMU migration event: " + e.member("status"));
				wake_.notify();
			} else if (e.name == "STOP") {
				if (ram_check_ && !rx_->done())
					ram_check_->vm_stopped();
			} else if (e.name == "RESUME") {
				if (ram_check_)
					ram_check_->vm_resumed();
			}
		});
	} catch (const Error &e) {
		log_.debug(std::string("polling only: ") + e.what());
	}
}

void Session::watch() {
	bool cancel_sent = false;
	Clock::time_point cancel_at{};
	for (;;) {
		rx_failed_first_ = rx_->failed();
		if (check_ && !ram_located_) {
			try {
				ram_located_ = ram_check_->locate(dom_, qemu::kMainRamBlock);
			} catch (const Error &e) {
				warn_unchecked(e, log_);
				check_ = false;
			}
		}
		st_ = mig_.status();
		if (st_.terminal()) {
			ended_at_ = Clock::now();
			return;
		}
		if (!cancel_sent) {
			try {
				uint64_t total = std::max(st_.total, st_.transferred + st_.remaining);
				progress_.report("capture", st_.transferred, total);
			} catch (const Error &e) {
				if (e.status() != CLOUDLET_E_CANCELLED)
					throw;
				cancelled_ = true;
			}
			if (!cancelled_ && !rx_->failed() && opts_.on_status) {
				try { // steering is best effort: the migration goes on without it
					opts_.on_status(mig_, st_);
				} catch (const Error &e) {
					log_.debug(std::string("migration steering: ") + e.what());
				}
			}
			if (cancelled_ || rx_->failed()) {
				mig_.cancel();
				cancel_sent = true;
				cancel_at = Clock::now();
			}
		} else if (since(cancel_at) > 30) {
			// QEMU did not wind down; cut the socket so it must.
			rx_->abort_and_join();
			fail(CLOUDLET_E_LIBVIRT, "QEMU did not stop the migration of " + name_ +
			                             " within 30 s of being asked (status '" + st_.status + "')");
		}
		wake_.wait(std::chrono::milliseconds(50));
	}
}

void Session::finish(MigrationCapture &res) {
	res.passes = st_.dirty_sync_count;
	res.downtime_ms = static_cast<double>(st_.downtime_ms);
	if (st_.status == "completed") {
		// QEMU has closed its end; the receiver sees the end of input.
		if (!rx_->wait(std::chrono::seconds(60)))
			rx_->abort_and_join();
	}
	rx_->abort_and_join();
	// Which failure caused the other: a cancel ends the stream early
	// (the receiver then sees a truncated stream); a receiver error
	// makes QEMU's writes fail; a QEMU failure truncates the stream.
	if (cancelled_)
		fail(CLOUDLET_E_CANCELLED, "capture of " + name_ + " cancelled");
	if (rx_->error() && (rx_failed_first_ || st_.status == "completed"))
		std::rethrow_exception(rx_->error());
	if (st_.status != "completed")
		fail(CLOUDLET_E_LIBVIRT, "QEMU's migration of " + name_ + " ended '" + st_.status + "'" +
		                             (st_.error.empty() ? "" : ": " + st_.error));
	if (rx_->error())
		std::rethrow_exception(rx_->error());
	events_.reset(); // no STOP/RESUME from here on
	if (check_) {
		auto tc = Clock::now();
		try {
			res.corrected_pages = ram_check_->reconcile(dom_, qemu::kMainRamBlock, rx_->info().ram_sections);
			res.checked = true;
			log_.debug("checked the paused VM's RAM against the stream in " + std::to_string(since(tc)) +
			           " s after QEMU's end" +
			           (ram_check_->used_prescan() ? " (hashed during QEMU's final pass in " +
			                                             std::to_string(ram_check_->prescan_seconds()) + " s)"
			                                       : "") +
			           ": " + std::to_string(res.corrected_pages) + " pages QEMU had not sent in their last version");
		} catch (const Error &e) {
			warn_unchecked(e, log_);
		}
		res.check_seconds = since(tc);
	}
	res.stream_bytes = rx_->bytes();
	res.page_records = rx_->records();
	res.stream = rx_->info();
	progress_.report("capture", res.stream_bytes, res.stream_bytes);
}

} // namespace

MigrationCapture capture_migration(virDomainPtr dom, bool was_running, qemu::StreamSink &sink,
                                   const MigrationCaptureOptions &opts, Progress &progress, const Logger &log) {
	auto t0 = Clock::now();
	std::string name = virDomainGetName(dom);
	MigrationCapture res;
	Clock::time_point ended_at;
	try {
		if (!opts.live && was_running) {
			if (virDomainSuspend(dom) < 0)
				fail_libvirt("cannot pause domain " + name + " for the capture");
		}
		progress.report("capture", 0, 0);
		Session s(dom, name, sink, opts, progress, log);
		s.watch();
		s.finish(res);
		ended_at = s.ended_at();
	} catch (...) {
		restore_run_state(dom, was_running, log);
		throw;
	}
	res.seconds = since(t0);
	res.paused_seconds = res.downtime_ms / 1000 + since(ended_at);
	return res;
}

} // namespace cloudlet::virt
