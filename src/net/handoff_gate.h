// The destination's front door (docs/protocols/handoff.md "Admission"): it
// accepts connections on a listening socket and runs their handshakes
// concurrently, each within a short pre-authentication deadline, so that no
// stranger can hold the listener: not one who sends nothing, not one who
// drips a byte a second, not one who opens hundreds of connections. A
// connection is admitted once its peer has proved the credentials (TLS, the
// frame handshake) and sent its first authenticated frame; until then it
// costs a thread and a socket, both bounded (per source address and in
// total: the oldest unauthenticated connection makes room for a new one).
// Every connection that does not get in is logged as one line (at most 20
// a second; beyond that one line a second says how many more).
#pragma once

#include "net/handoff_wire.h"
#include "net/secure_link.h"
#include "net/tcp.h"
#include "util/progress.h"
#include "util/unique_fd.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace cloudlet::net {

struct GateLimits {
	int handshake_ms = 10000;    // connect -> first authenticated frame
	size_t per_address = 16;     // unauthenticated connections from one address
	size_t total = 64;           // unauthenticated connections in all
	size_t log_lines_per_second = 20; // beyond: one line a second says how many more
};

// An admitted connection: the peer proved the credentials; `first` is the
// first frame it sent after the handshake (checked by its MAC, not yet by
// its type).
struct AdmittedPeer {
	UniqueFd fd;
	std::string peer;
	std::unique_ptr<Link> link;
	std::unique_ptr<FrameChannel> channel;
	Frame first;
};

class HandoffGate {
public:
	using Log = std::function<void(const std::string &)>;
	// The credentials as they are now (a token file re-read): called for
	// each connection, so that a rotation takes effect at the next one.
	using Credentials = std::function<SecurityConfig()>;
	// Starts accepting on `listener` (which must outlive the gate) with
	// `security`; `reload` (may be empty) gives the credentials anew for
	// each connection. If reloading fails (a rotation that broke the token
	// file), next() throws that error: the host's fault, which no retry
	// mends.
	HandoffGate(TcpListener &listener, const SecurityConfig &security, GateLimits limits, Log log,
	            Credentials reload = {});
	// Stops accepting, ends every handshake still running and joins them.
	~HandoffGate();
	HandoffGate(const HandoffGate &) = delete;
	HandoffGate &operator=(const HandoffGate &) = delete;

	// The next admitted connection; waits for one, `progress.check()` every
	// 200 ms (cancel). After the first, peers admitted while nobody waits
	// are told REFUSE (CLOUDLET_E_BUSY) and closed.
	AdmittedPeer next(Progress &progress);
	// The caller will not take more: connections admitted from now on are
	// refused as busy.
	void busy();

	// After next(): the admitted source may come back on a new connection
	// whose first frame is RESUME naming `session` (its link was cut:
	// docs/protocols/handoff.md "Resume"); other RESUMEs are refused.
	// `interrupt` runs on a gate thread when one arrives, so that a reader
	// still blocked on the old connection lets go of it.
	void expect_resume(const std::string &session, std::function<void()> interrupt);
	// The connection that came back for the session (`first` is its
	// RESUME), waiting up to `ms`, `progress.check()` every 200 ms.
	// CLOUDLET_E_TIMEOUT if none came.
	AdmittedPeer resumed(int ms, Progress &progress);

	struct Counts {
		size_t pending = 0;  // unauthenticated connections now (the bounded ones)
		size_t admitted = 0, refused = 0, evicted = 0, resumed = 0;
	};
	Counts counts() const;

private:
	struct Pending;
	void accept_loop();
	void handshake(std::shared_ptr<Pending> p, std::shared_ptr<const LinkSetup> setup);
	// A RESUME as a connection's first frame: to resumed() if it names the
	// session; else REFUSE. "" when taken, else the line to log.
	std::string take_resume(const std::shared_ptr<Pending> &p, std::unique_ptr<Link> link,
	                        std::unique_ptr<FrameChannel> ch, Frame first);
	std::shared_ptr<const LinkSetup> current_setup(); // reloaded if changed; throws
	void make_room_for(const std::string &address); // with mu_ held
	void reap();                                   // with mu_ held
	void note(const std::string &line);            // a log line, rate-limited, never waits

	TcpListener &listener_;
	std::shared_ptr<const LinkSetup> setup_;
	Credentials reload_;
	std::exception_ptr setup_error_;
	GateLimits limits_;
	Log log_;
	std::mutex log_mu_;
	std::chrono::steady_clock::time_point window_{}; // with log_mu_
	size_t lines_ = 0;                               // with log_mu_
	std::atomic<uint64_t> suppressed_{0};
	mutable std::mutex mu_;
	std::condition_variable cv_;
	bool stop_ = false, taking_ = true;
	std::list<std::shared_ptr<Pending>> pending_;
	std::deque<AdmittedPeer> admitted_;
	std::string session_;                 // expect_resume()'s
	std::mutex interrupt_mu_;             // before mu_: guards interrupt_ and its calls
	std::function<void()> interrupt_;     // expect_resume()'s
	std::optional<AdmittedPeer> resume_;  // came back, not yet taken by resumed()
	std::list<std::thread> finished_threads_;
	Counts counts_;
	std::thread acceptor_;
};

} // namespace cloudlet::net
