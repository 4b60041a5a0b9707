#include "virt/streamed_restore.h"

#include "util/block_sigpipe.h"
#include "util/error.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/virterror.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

namespace cloudlet::virt {

namespace {

// The FIFO's sink, remembering whether a write to it failed: that is how
// the producer learns that libvirt (QEMU) stopped reading, so only then is
// libvirt's error the first cause. Any other failure of the producer (a bad
// ITEMS batch, a lost link, a damaged overlay) happened first, and libvirt's
// error ("load of migration failed") is only its consequence.
// It also checks for cancel once a MiB: a producer that only writes (a
// synthesis streaming the whole of RAM) stops within a few milliseconds.
class FifoSink : public qemu::ByteSink {
public:
	FifoSink(int fd, const std::string &name, bool &failed, Progress &progress)
	    : sink_(fd, name), failed_(failed), progress_(progress) {}
	void write(const uint8_t *data, size_t n) override {
		if ((written_ += n) >= kCheckBytes) {
			written_ = 0;
			progress_.check();
		}
		try {
			sink_.write(data, n);
		} catch (...) {
			failed_ = true;
			throw;
		}
	}
	void flush() {
		try {
			sink_.flush();
		} catch (...) {
			failed_ = true;
			throw;
		}
	}

private:
	static constexpr size_t kCheckBytes = 1u << 20;
	qemu::FdSink sink_;
	bool &failed_;
	Progress &progress_;
	size_t written_ = 0;
};

} // namespace

void restore_streamed(virConnectPtr conn, const std::string &fifo, const std::function<void(qemu::ByteSink &)> &produce,
                      bool paused, Progress &progress) {
	unlink(fifo.c_str());
	if (mkfifo(fifo.c_str(), 0600) != 0)
		fail_errno("cannot create FIFO " + fifo, errno);
	struct Unlink {
		std::string p;
		~Unlink() { unlink(p.c_str()); }
	} unlink_fifo{fifo};

	std::atomic<bool> done{false};
	int rc = 0;
	std::string restore_error;
	std::thread t([&] {
		rc = virDomainRestoreFlags(conn, fifo.c_str(), nullptr, paused ? VIR_DOMAIN_SAVE_PAUSED : VIR_DOMAIN_SAVE_RUNNING);
		if (rc != 0) {
			const char *m = virGetLastErrorMessage();
			restore_error = m ? m : "unknown libvirt error";
		}
		done = true;
	});
	struct Join {
		std::thread &t;
		~Join() {
			if (t.joinable())
				t.join();
		}
	} join{t};

	// Wait for libvirt to open the FIFO (a non-blocking open for writing
	// fails with ENXIO until a reader has it), or to fail before it does.
	int fd = -1;
	auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
	while (fd < 0) {
		fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno != ENXIO)
			fail_errno("cannot open FIFO " + fifo, errno);
		if (done) {
			t.join();
			fail(CLOUDLET_E_LIBVIRT, "libvirt could not restore from " + fifo + ": " + restore_error);
		}
		if (std::chrono::steady_clock::now() > deadline)
			fail(CLOUDLET_E_TIMEOUT, "libvirt did not open " + fifo + " within 120 s");
		progress.check();
		std::this_thread::sleep_for(std::chrono::milliseconds(2));
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	// A bigger pipe: fewer wake-ups of QEMU's reader and of us (best
	// effort; the kernel caps it at /proc/sys/fs/pipe-max-size).
	fcntl(fd, F_SETPIPE_SZ, 1 << 20);

	bool write_failed = false;
	try {
		BlockSigpipe guard;
		FifoSink sink(fd, fifo, write_failed, progress);
		produce(sink);
		sink.flush();
	} catch (const Error &e) {
		close(fd);
		t.join();
		if (rc != 0 && write_failed)
			fail(CLOUDLET_E_LIBVIRT, "libvirt could not restore the image: " + restore_error);
		throw; // the producer's own failure came first; libvirt's follows from it
	} catch (...) {
		close(fd);
		throw;
	}
	close(fd);
	t.join();
	if (rc != 0)
		fail(CLOUDLET_E_LIBVIRT, "libvirt could not restore the image: " + restore_error);
}

} // namespace cloudlet::virt
