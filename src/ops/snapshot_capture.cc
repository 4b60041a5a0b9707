#include "ops/snapshot_capture.h"

#include "byte_reader.h"
#include "migration_stream.h"
#include "image_file.h"
#include "save_image.h"
#include "stream_parser.h"
#include "stream_writer.h"
#include "store/base_store.h"
#include "util/clock.h"
#include "util/error.h"
#include "virt/domain.h"
#include "virt/guest_ram.h"
#include "virt/page_ledger.h"
#include "virt/qemu_migration.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace cloudlet::ops {

namespace {

double seconds_since(Clock::time_point t0) {
	return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Counts bytes as the reader thread pulls them, for progress and the result.
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

// Passes pages to the image writer and counts page versions; with a
// ledger, also notes each page's newest version for the check after QEMU
// is done (virt/page_ledger.h).
class CountingSink : public qemu::StreamSink {
public:
	CountingSink(qemu::StreamSink &inner, bool keep_ledger) : inner_(inner), keep_ledger_(keep_ledger) {}
	void on_ram_blocks(const qemu::StreamInfo &i) override {
		if (keep_ledger_) {
			ledger = std::make_unique<virt::PageLedger>(i.total_pages);
			std::lock_guard lk(blocks_mu_);
			blocks_ = i.blocks;
		}
		inner_.on_ram_blocks(i);
	}
	// The RAM block table once the stream has given it (any thread).
	std::vector<qemu::RamBlock> blocks() {
		std::lock_guard lk(blocks_mu_);
		return blocks_;
	}
	void on_page(uint32_t block, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t section) override {
		records++;
		if (ledger)
			ledger->record(linear, data, fill);
		inner_.on_page(block, linear, data, fill, section);
	}
	qemu::StreamSink &inner() { return inner_; }
	uint64_t records = 0;
	std::unique_ptr<virt::PageLedger> ledger;

private:
	qemu::StreamSink &inner_;
	bool keep_ledger_;
	std::mutex blocks_mu_;
	std::vector<qemu::RamBlock> blocks_;
};

// Removes a file on scope exit unless released.
struct FileGuard {
	std::string path;
	~FileGuard() {
		if (!path.empty())
			unlink(path.c_str());
	}
};

struct Fd {
	int fd = -1;
	~Fd() {
		if (fd >= 0)
			close(fd);
	}
};

// Wakes the watching thread early: the receiver finished, or QEMU reported
// a migration state change.
class Wakeup {
public:
	void notify() {
		std::lock_guard lk(mu_);
		flag_ = true;
		cv_.notify_all();
	}
	void wait(std::chrono::milliseconds limit) {
		std::unique_lock lk(mu_);
		cv_.wait_for(lk, limit, [this] { return flag_; });
		flag_ = false;
	}

private:
	std::mutex mu_;
	std::condition_variable cv_;
	bool flag_ = false;
};

// Parses the stream on its own thread, straight into the memory image file,
// while the calling thread watches QEMU. On a parse error it shuts the
// socket so QEMU's writes fail and the migration ends.
class StreamReceiver {
public:
	// Pages go to `writer` (the memory image) or, without one, to `sink`.
	// `keep_ledger`: note what each page's newest version was (reconcile()).
	StreamReceiver(int fd, std::string what, std::unique_ptr<qemu::ImageFileWriter> writer, qemu::StreamSink *sink,
	               Wakeup &wake, bool keep_ledger)
	    : fd_(fd), what_(std::move(what)), writer_(std::move(writer)), sink_(sink), wake_(wake),
	      counting_(writer_ ? static_cast<qemu::StreamSink &>(*writer_) : *sink_, keep_ledger) {
		thread_ = std::thread([this] { run(); });
	}
	~StreamReceiver() {
		prescan_stop_ = true;
		join_prescan();
		abort_and_join();
	}

	// Waits up to `limit` for the thread to finish; true if it did.
	bool wait(std::chrono::milliseconds limit) {
		std::unique_lock lk(mu_);
		return cv_.wait_for(lk, limit, [this] { return done_; });
	}
	bool done() {
		std::lock_guard lk(mu_);
		return done_;
	}
	bool failed() {
		std::lock_guard lk(mu_);
		return done_ && error_;
	}
	void abort_and_join() {
		if (thread_.joinable()) {
			shutdown(fd_, SHUT_RDWR); // wakes a blocked read with end of input
			thread_.join();
		}
	}
	void join() {
		if (thread_.joinable())
			thread_.join();
	}
	std::exception_ptr error() const { return error_; }
	const qemu::StreamInfo &info() const { return info_; }
	uint64_t bytes() const { return bytes_.load(); }
	uint64_t records() const { return records_; }
	// Locates RAM block `block` in QEMU's process once the stream has named
	// it; true when done. Early, because QEMU holds its big lock through its
	// final pass, so its monitor cannot answer then. Throws
	// CLOUDLET_E_UNSUPPORTED if the RAM cannot be read.
	bool locate_ram(virDomainPtr dom, const std::string &block) {
		std::vector<qemu::RamBlock> blocks = counting_.blocks();
		if (blocks.empty())
			return false; // no table yet
		for (uint32_t i = 0; i < blocks.size(); i++)
			if (blocks[i].name == block) {
				auto ram = std::make_unique<virt::GuestRam>(dom, block, blocks[i].length);
				std::lock_guard lk(mu_);
				ram_index_ = i;
				ram_block_ = blocks[i];
				ram_ = std::move(ram);
				return true;
			}
		fail(CLOUDLET_E_UNSUPPORTED, "the stream has no RAM block " + block);
	}
	// The VM stopped (QEMU's STOP event, on libvirt's event thread): if this
	// is QEMU's final pass, the RAM no longer changes, so its hashes can be
	// taken now, beside the pass, instead of after it (PageLedger::hash_paused).
	void vm_stopped() {
		std::lock_guard lk(mu_);
		if (!ram_ || prescan_.joinable() || done_)
			return;
		prescan_stop_ = false;
		prescan_ok_ = false;
		prescan_ = std::thread([this] {
			auto t = Clock::now();
			try {
				counting_.ledger->hash_paused(
				    ram_block_.first_page, ram_block_.pages(),
				    [this](uint64_t off, uint8_t *buf, size_t n) { ram_->read(off, buf, n); }, 2, &prescan_stop_);
				prescan_ok_ = !prescan_stop_;
			} catch (const Error &) {
				// reconcile() reads the RAM itself and reports what is wrong
			}
			prescan_seconds_ = seconds_since(t);
		});
	}
	// The VM ran again (RESUME): hashes taken since its STOP are stale.
	void vm_resumed() {
		std::lock_guard lk(mu_);
		prescan_stop_ = true;
		prescan_stale_ = true;
	}
	// After the thread ended cleanly, with the VM paused: the pages of the
	// located RAM block whose real content (read from QEMU's process) is not
	// what the stream last said go to the output as one more version.
	// Returns how many; throws CLOUDLET_E_UNSUPPORTED if the RAM cannot be read.
	uint64_t reconcile(virDomainPtr dom, const std::string &block) {
		join_prescan();
		if (!counting_.ledger)
			return 0;
		if (!ram_ && !locate_ram(dom, block))
			fail(CLOUDLET_E_UNSUPPORTED, "the stream has no RAM block table");
		if (!prescan_ok_ || prescan_stale_)
			counting_.ledger->forget_paused();
		else
			used_prescan_ = true;
		uint64_t section = info_.ram_sections;
		uint32_t index = ram_index_;
		return counting_.ledger->reconcile(
		    ram_block_.first_page, ram_block_.pages(),
		    [&](uint64_t off, uint8_t *buf, size_t n) { ram_->read(off, buf, n); },
		    [&](uint64_t linear, const uint8_t *data) { counting_.inner().on_page(index, linear, data, 0, section); });
	}
	// Whether reconcile() used hashes taken during QEMU's final pass, and how long they took.
	bool used_prescan() const { return used_prescan_; }
	double prescan_seconds() const { return prescan_seconds_; }
	void join_prescan() {
		std::thread t;
		{
			std::lock_guard lk(mu_);
			t = std::move(prescan_);
		}
		if (t.joinable())
			t.join();
	}
	// The memory image file is complete (after reconcile()).
	void finish_writer() {
		if (writer_)
			writer_->finish(info_);
	}

private:
	void run() {
		try {
			qemu::FdSource fs(fd_, what_);
			CountingSource cs(fs, bytes_);
			qemu::Reader r(cs, what_);
			info_ = qemu::parse_stream(r, counting_);
			records_ = counting_.records;
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

	int fd_;
	std::string what_;
	std::unique_ptr<qemu::ImageFileWriter> writer_;
	qemu::StreamSink *sink_;
	Wakeup &wake_;
	std::thread thread_;
	std::mutex mu_;
	std::condition_variable cv_;
	bool done_ = false;
	std::exception_ptr error_;
	qemu::StreamInfo info_;
	std::atomic<uint64_t> bytes_{0};
	uint64_t records_ = 0;
	CountingSink counting_;
	// The RAM block checked after a live capture, and its hashes taken
	// during QEMU's final pass (guarded by mu_ until the prescan is joined).
	std::unique_ptr<virt::GuestRam> ram_;
	qemu::RamBlock ram_block_;
	uint32_t ram_index_ = 0;
	std::thread prescan_;
	std::atomic<bool> prescan_stop_{false}, prescan_ok_{false};
	bool prescan_stale_ = false, used_prescan_ = false;
	double prescan_seconds_ = 0;
};

// Progress over a byte sink (the save image being written).
class ProgressByteSink : public qemu::ByteSink {
public:
	ProgressByteSink(qemu::ByteSink &inner, Progress &p, uint64_t total) : inner_(inner), p_(p), total_(total) {}
	void write(const uint8_t *data, size_t n) override {
		inner_.write(data, n);
		done_ += n;
		if (done_ - reported_ >= (64u << 20)) {
			reported_ = done_;
			p_.report("write", done_, total_);
		}
	}
	uint64_t done() const { return done_; }

private:
	qemu::ByteSink &inner_;
	Progress &p_;
	uint64_t total_, done_ = 0, reported_ = 0;
};

uint64_t write_save_image(const std::string &image_path, const std::string &out_path, const std::string &xml,
                          bool was_running, Progress &progress) {
	qemu::ImageFile img(image_path);
	Fd out{open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
	if (out.fd < 0)
		fail_errno("cannot create " + out_path, errno);
	qemu::FdSink fd_sink(out.fd, out_path);
	uint64_t estimate = img.data_pages() * (qemu::kTargetPageSize + 16) + img.stream_info().device_state.size();
	ProgressByteSink sink(fd_sink, progress, estimate);
	std::vector<uint8_t> header = qemu::encode_save_header(xml, "", was_running);
	sink.write(header.data(), header.size());
	qemu::write_stream(sink, img);
	fd_sink.flush();
	if (fsync(out.fd) != 0)
		fail_errno("cannot sync " + out_path, errno);
	progress.report("write", sink.done(), sink.done());
	return sink.done();
}

} // namespace

CaptureResult snapshot_capture(Context &ctx, const std::string &domain, const std::string &path,
                               const CaptureOptions &opts, Progress &progress) {
	auto t0 = Clock::now();
	CaptureResult res;
	res.path = path;
	auto conn = ctx.connection();
	virt::DomainPtr dom = virt::lookup_domain(*conn, domain);
	res.domain_name = virDomainGetName(dom.get());
	char uuid[VIR_UUID_STRING_BUFLEN] = "";
	virDomainGetUUIDString(dom.get(), uuid);
	res.domain_uuid = uuid;

	int state = virt::domain_state(dom.get());
	if (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_PAUSED)
		fail(CLOUDLET_E_INVALID_ARG, "domain " + res.domain_name + " is " + virt::state_name(state) +
		                                 "; only a running or paused domain can be captured");
	res.was_running = state == VIR_DOMAIN_RUNNING;
	std::string xml = virt::save_xml(dom.get());

	// Output appears only when complete: written beside it, then renamed.
	FileGuard image{opts.format == CaptureFormat::Sink ? std::string() : path + ".cltmem.part"};
	FileGuard part{opts.format == CaptureFormat::SaveImage ? path + ".part" : ""};
	// If this process dies from here on: the VM runs again, no part file stays.
	std::optional<store::UndoJournal> own_journal;
	store::UndoJournal *journal = opts.journal;
	if (!journal)
		journal = &own_journal.emplace(store::BaseStore(ctx.settings().store_dir).root(), "capture");
	if (res.was_running)
		journal->resume_domain(res.domain_uuid);
	for (const std::string *p : {&image.path, &part.path})
		if (!p->empty())
			journal->remove_path(*p);
	const Logger &log = ctx.log();
	auto restore_prior_state = [&] { virt::restore_run_state(dom.get(), res.was_running, log); };

	Clock::time_point ended_at = Clock::now(); // when QEMU's migration ended
	try {
		if (!opts.live && res.was_running) {
			if (virDomainSuspend(dom.get()) < 0)
				virt::fail_libvirt("cannot pause domain " + res.domain_name + " for the capture");
		}
		progress.report("capture", 0, 0);
		// Created before QEMU starts sending: a bad output path fails here.
		std::unique_ptr<qemu::ImageFileWriter> writer;
		if (opts.format != CaptureFormat::Sink)
			writer = std::make_unique<qemu::ImageFileWriter>(image.path);
		else if (!opts.sink)
			fail(CLOUDLET_E_INTERNAL, "capture into a sink without a sink");
		virt::OutgoingMigration mig(dom.get());
		mig.prepare(opts.live, opts.downtime_limit_ms);

		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
			fail_errno("socketpair", errno);
		Fd ours{sv[0]}, theirs{sv[1]};
		mig.start(theirs.fd);
		close(theirs.fd); // QEMU holds its own copy; ours must go for EOF to arrive
		theirs.fd = -1;
		log.info("capture of " + res.domain_name + ": QEMU is migrating into our socket");

		Wakeup wake;
		// A live capture of a TCG guest is checked against the paused VM
		// after QEMU is done (virt/guest_ram.h: QEMU < 9.0 loses dirty pages).
		bool check = opts.live && virt::virt_type(dom.get()) == "qemu";
		StreamReceiver rx(ours.fd, "migration stream of domain " + res.domain_name, std::move(writer), opts.sink, wake,
		                  check);
		bool ram_located = false;
		// The RAM cannot be read (CLOUDLET_E_UNSUPPORTED): go on, unchecked, and say so.
		auto warn_unchecked = [&log](const Error &e) {
			if (e.status() != CLOUDLET_E_UNSUPPORTED)
				throw; // called inside a handler: the exception as caught
			log.warn(std::string("the pages QEMU sent cannot be checked against the paused VM, and QEMU "
			                     "before 9.0 can lose guest writes in a live migration under TCG: ") +
			         e.what());
		};
		// QEMU's MIGRATION events end the 50 ms wait at once; polling stays
		// the source of truth (events need the caller's or our event loop).
		// STOP starts the check's hashing beside QEMU's final pass.
		std::unique_ptr<virt::QmpEventSubscription> events;
		try {
			events = virt::QmpClient(dom.get()).subscribe("", [&wake, &log, &rx](const qemu::QmpEvent &e) {
				if (e.name == "MIGRATION") {
					log.debug("QEMU migration event: " + e.member("status"));
					wake.notify();
				} else if (e.name == "STOP") {
					rx.vm_stopped();
				} else if (e.name == "RESUME") {
					rx.vm_resumed();
				}
			});
		} catch (const Error &e) {
			log.debug(std::string("polling only: ") + e.what());
		}
		bool cancel_sent = false, cancelled = false;
		Clock::time_point cancel_at{};
		virt::MigrationStatus st;
		bool rx_failed_first = false; // the receiver failed before QEMU ended
		for (;;) {
			rx_failed_first = rx.failed();
			if (check && !ram_located) {
				try {
					ram_located = rx.locate_ram(dom.get(), qemu::kMainRamBlock);
				} catch (const Error &e) {
					warn_unchecked(e);
					check = false;
				}
			}
			st = mig.status();
			if (st.terminal()) {
				ended_at = Clock::now();
				break;
			}
			if (!cancel_sent) {
				try {
					uint64_t total = std::max(st.total, st.transferred + st.remaining);
					progress.report("capture", st.transferred, total);
				} catch (const Error &e) {
					if (e.status() != CLOUDLET_E_CANCELLED)
						throw;
					cancelled = true;
				}
				if (!cancelled && !rx.failed() && opts.on_status) {
					try { // steering is best effort: the migration goes on without it
						opts.on_status(mig, st);
					} catch (const Error &e) {
						log.debug(std::string("migration steering: ") + e.what());
					}
				}
				if (cancelled || rx.failed()) {
					mig.cancel();
					cancel_sent = true;
					cancel_at = Clock::now();
				}
			} else if (seconds_since(cancel_at) > 30) {
				// QEMU did not wind down; cut the socket so it must.
				rx.abort_and_join();
				fail(CLOUDLET_E_LIBVIRT, "QEMU did not stop the migration of " + res.domain_name +
				                             " within 30 s of being asked (status '" + st.status + "')");
			}
			wake.wait(std::chrono::milliseconds(50));
		}
		res.passes = st.dirty_sync_count;
		res.downtime_ms = static_cast<double>(st.downtime_ms);

		if (st.status == "completed") {
			// QEMU has closed its end; the receiver sees the end of input.
			if (!rx.wait(std::chrono::seconds(60)))
				rx.abort_and_join();
		}
		rx.abort_and_join();
		// Which failure caused the other: a cancel ends the stream early
		// (the receiver then sees a truncated stream); a receiver error
		// makes QEMU's writes fail; a QEMU failure truncates the stream.
		if (cancelled)
			fail(CLOUDLET_E_CANCELLED, "capture of " + res.domain_name + " cancelled");
		if (rx.error() && (rx_failed_first || st.status == "completed"))
			std::rethrow_exception(rx.error());
		if (st.status != "completed")
			fail(CLOUDLET_E_LIBVIRT, "QEMU's migration of " + res.domain_name + " ended '" + st.status + "'" +
			                             (st.error.empty() ? "" : ": " + st.error));
		if (rx.error())
			std::rethrow_exception(rx.error());
		events.reset(); // no STOP/RESUME from here on
		if (check) {
			auto tc = Clock::now();
			try {
				res.corrected_pages = rx.reconcile(dom.get(), qemu::kMainRamBlock);
				res.checked = true;
				log.debug("checked the paused VM's RAM against the stream in " + std::to_string(seconds_since(tc)) +
				          " s after QEMU's end" +
				          (rx.used_prescan() ? " (hashed during QEMU's final pass in " +
				                                   std::to_string(rx.prescan_seconds()) + " s)"
				                             : "") +
				          ": " + std::to_string(res.corrected_pages) + " pages QEMU had not sent in their last version");
			} catch (const Error &e) {
				warn_unchecked(e);
			}
			res.check_seconds = seconds_since(tc);
		}
		rx.finish_writer();
		res.stream_bytes = rx.bytes();
		res.page_records = rx.records();
		res.ram_sections = rx.info().ram_sections;
		res.total_pages = rx.info().total_pages;
		res.stream = rx.info();
		progress.report("capture", res.stream_bytes, res.stream_bytes);
	} catch (...) {
		restore_prior_state();
		throw;
	}

	// The VM's memory is safe in the image file. From here on a failure
	// still leaves the domain as it was (paused by QEMU until we decide).
	try {
		if (opts.format == CaptureFormat::Sink) {
			// Nothing was written here; the sink has had every page.
		} else if (opts.format == CaptureFormat::SaveImage) {
			res.file_bytes = write_save_image(image.path, part.path, xml, res.was_running, progress);
			if (rename(part.path.c_str(), path.c_str()) != 0)
				fail_errno("cannot rename " + part.path + " to " + path, errno);
			part.path.clear();
		} else {
			if (rename(image.path.c_str(), path.c_str()) != 0)
				fail_errno("cannot rename " + image.path + " to " + path, errno);
			image.path.clear();
			struct stat st {};
			if (stat(path.c_str(), &st) == 0)
				res.file_bytes = static_cast<uint64_t>(st.st_size);
		}
		if (opts.format != CaptureFormat::Sink) {
			qemu::ImageFile check(opts.format == CaptureFormat::MemoryImage ? path : image.path);
			res.data_pages = check.data_pages();
		}
	} catch (...) {
		restore_prior_state();
		throw;
	}

	res.final_state = virt::release(dom.get(), res.was_running, opts.stop, "the capture is complete (" + path + ")",
	                                opts.keep_paused);
	res.seconds = seconds_since(t0);
	res.paused_seconds = res.downtime_ms / 1000 + seconds_since(ended_at);
	log.info("captured " + res.domain_name + " into " + path);
	return res;
}

} // namespace cloudlet::ops
