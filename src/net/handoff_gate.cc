#include "net/handoff_gate.h"

#include "net/handoff_messages.h"
#include "util/error.h"

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <system_error>

namespace cloudlet::net {

namespace {

using SteadyClock = std::chrono::steady_clock;

// "ADDR" of "ADDR:PORT" (the unit a bound applies to).
std::string address_of(const std::string &peer) {
	size_t colon = peer.rfind(':');
	return colon == std::string::npos ? peer : peer.substr(0, colon);
}

int ms_left(SteadyClock::time_point deadline) {
	auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
	if (ms <= 0)
		fail(CLOUDLET_E_TIMEOUT, "the handshake did not complete in time");
	return static_cast<int>(ms);
}

} // namespace

struct HandoffGate::Pending {
	UniqueFd fd;
	std::string peer, address;
	SteadyClock::time_point since;
	std::thread thread;
	// Bytes the peer sent so far; shared with its link, which an admitted
	// connection takes along when this record is long gone.
	std::shared_ptr<std::atomic<uint64_t>> received = std::make_shared<std::atomic<uint64_t>>(0);
	bool evicted = false;
	bool authenticated = false; // TLS (or the greeting) proved the credentials: no longer a stranger
};

HandoffGate::HandoffGate(TcpListener &listener, const SecurityConfig &security, GateLimits limits, Log log,
                         Credentials reload)
    : listener_(listener),
      setup_(std::make_shared<const LinkSetup>(security, LinkSetup::Role::Server)), reload_(std::move(reload)),
      limits_(limits), log_(std::move(log)) {
	acceptor_ = std::thread([this] { accept_loop(); });
}

std::shared_ptr<const LinkSetup> HandoffGate::current_setup() {
	if (!reload_)
		return setup_;
	// The token file re-read, the certificates' files looked at (not read):
	// a rotated token or a renewed certificate takes effect at the next
	// connection, and a stranger's connection costs no PEM parsing.
	SecurityConfig now = reload_();
	if (!setup_->current(now))
		setup_ = std::make_shared<const LinkSetup>(now, LinkSetup::Role::Server);
	return setup_;
}

HandoffGate::~HandoffGate() {
	{
		std::lock_guard lock(mu_);
		stop_ = true;
		for (auto &p : pending_)
			::shutdown(p->fd.get(), SHUT_RDWR);
	}
	cv_.notify_all();
	acceptor_.join();
	// Handshakes end at once on their shut sockets; each moves its thread
	// to finished_threads_ as it leaves.
	std::unique_lock lock(mu_);
	while (!pending_.empty()) {
		lock.unlock();
		std::this_thread::sleep_for(std::chrono::milliseconds(5));
		lock.lock();
		for (auto &p : pending_)
			::shutdown(p->fd.get(), SHUT_RDWR);
	}
	reap();
}

void HandoffGate::reap() {
	for (auto &t : finished_threads_)
		t.join();
	finished_threads_.clear();
}

void HandoffGate::make_room_for(const std::string &address) {
	auto stranger = [](const std::shared_ptr<Pending> &p) { return !p->evicted && !p->authenticated; };
	size_t from_here = 0, total = 0;
	for (auto &p : pending_) {
		if (!stranger(p))
			continue;
		total++;
		from_here += p->address == address;
	}
	bool per_address = from_here >= limits_.per_address;
	if (!per_address && total < limits_.total)
		return;
	// Who makes room (of this address, when that bound is the one hit): one
	// that has sent nothing at all before one that has, then the oldest
	// (pending_ is in arrival order). A real source sends its whole
	// ClientHello at once; idle and dripping strangers go first, and a flood
	// of new connections does not push out a source mid-handshake while
	// idle ones remain.
	// "Has sent something": read by the handshake already, or waiting in
	// the socket (a source whose thread has not read its ClientHello yet,
	// on a busy host, must not look idle).
	auto has_sent = [](const Pending &p) {
		int waiting = 0;
		return *p.received > 0 || (ioctl(p.fd.get(), FIONREAD, &waiting) == 0 && waiting > 0);
	};
	std::shared_ptr<Pending> victim;
	bool victim_sent = true;
	for (auto &p : pending_) {
		if (!stranger(p) || (per_address && p->address != address))
			continue;
		bool sent = has_sent(*p);
		if (!victim || (victim_sent && !sent)) {
			victim = p;
			victim_sent = sent;
		}
		if (!victim_sent)
			break;
	}
	if (victim) {
		victim->evicted = true;
		counts_.evicted++;
		::shutdown(victim->fd.get(), SHUT_RDWR);
	}
}

void HandoffGate::accept_loop() {
	for (;;) {
		bool full;
		{
			std::lock_guard lock(mu_);
			reap();
			if (stop_)
				return;
			// Threads (and sockets) in all, dropped ones that are still
			// closing included: at the cap, new connections wait in the
			// kernel's backlog for a moment instead.
			full = pending_.size() >= limits_.total + limits_.per_address;
		}
		if (full) {
			std::this_thread::sleep_for(std::chrono::milliseconds(2));
			continue;
		}
		std::optional<TcpConnection> c;
		try {
			c = listener_.accept_for(200);
		} catch (const Error &e) {
			note("handoff listener: " + std::string(e.what()));
			std::this_thread::sleep_for(std::chrono::milliseconds(100)); // EMFILE and the like: do not spin
			continue;
		}
		if (!c)
			continue;
		std::shared_ptr<const LinkSetup> setup;
		try {
			setup = current_setup();
		} catch (...) {
			std::lock_guard lock(mu_);
			setup_error_ = std::current_exception();
			cv_.notify_all();
			return; // the connection closes; next() reports why
		}
		auto p = std::make_shared<Pending>();
		p->fd = std::move(c->fd);
		p->peer = c->peer.empty() ? "a peer" : c->peer;
		p->address = address_of(p->peer);
		p->since = SteadyClock::now();
		std::lock_guard lock(mu_);
		if (stop_)
			return;
		make_room_for(p->address);
		pending_.push_back(p);
		try {
			p->thread = std::thread([this, p, setup] { handshake(p, setup); });
		} catch (const std::system_error &e) { // no thread to be had: this connection is dropped
			pending_.pop_back();
			counts_.refused++;
			continue;
		}
	}
}

void HandoffGate::handshake(std::shared_ptr<Pending> p, std::shared_ptr<const LinkSetup> setup) {
	auto deadline = p->since + std::chrono::milliseconds(limits_.handshake_ms);
	std::string refused;
	try {
		auto link = setup->open(p->fd.get(), p->peer, "", ms_left(deadline), p->received);
		if (setup->mode() != Security::PlaintextUnsafe) {
			std::lock_guard lock(mu_);
			p->authenticated = !p->evicted; // TLS proved the credentials
		}
		auto ch = std::make_unique<FrameChannel>(*link, p->peer);
		ch->server_handshake(ms_left(deadline));
		Frame first = ch->receive(ms_left(deadline));
		if (first.type == FrameType::Resume) {
			refused = take_resume(p, std::move(link), std::move(ch), std::move(first));
		} else if (std::unique_lock lock(mu_); !stop_ && taking_ && admitted_.empty()) {
			admitted_.push_back(AdmittedPeer{std::move(p->fd), p->peer, std::move(link), std::move(ch), std::move(first)});
			counts_.admitted++;
			cv_.notify_all();
		} else {
			lock.unlock();
			refused = "refused as busy: this cloudlet is receiving another handoff";
			try {
				ch->send(FrameType::Refuse, Stop{CLOUDLET_E_BUSY, "the destination is receiving another handoff; "
				                                                  "try again when it is done"}.encode());
			} catch (const Error &) {
			}
		}
	} catch (const Error &e) {
		std::lock_guard lock(mu_);
		refused = p->evicted ? "dropped (unauthenticated connections from " + p->address + " or in all at the bound)"
		                     : std::string("refused: ") + e.what();
	}
	bool say = false;
	if (!refused.empty()) {
		std::lock_guard lock(mu_);
		counts_.refused++;
		say = !stop_; // a gate that is closing drops its connections without a word
	}
	if (say)
		note("handoff connection from " + p->peer + " " + refused);
	std::lock_guard lock(mu_);
	p->fd.reset();
	auto it = std::find(pending_.begin(), pending_.end(), p);
	if (it != pending_.end())
		pending_.erase(it);
	finished_threads_.push_back(std::move(p->thread));
}

std::string HandoffGate::take_resume(const std::shared_ptr<Pending> &p, std::unique_ptr<Link> link,
                                     std::unique_ptr<FrameChannel> ch, Frame first) {
	Resume r = Resume::decode(first.payload, p->peer); // a malformed one: refused like any bad frame
	std::optional<AdmittedPeer> unclaimed; // an earlier comeback nobody took: closed, outside the lock
	{
		// Held while the interrupt runs: once expect_resume() has replaced
		// it, the old one is neither running nor called again.
		std::lock_guard interrupting(interrupt_mu_);
		bool ours;
		{
			std::lock_guard lock(mu_);
			ours = !stop_ && !session_.empty() && r.session == session_;
		}
		if (ours) {
			// The old connection lets go first: once resume_ is there, the
			// handoff may take it and make it the current one.
			if (interrupt_)
				interrupt_();
			std::lock_guard lock(mu_);
			unclaimed = std::move(resume_);
			resume_ = AdmittedPeer{std::move(p->fd), p->peer, std::move(link), std::move(ch), std::move(first)};
			counts_.resumed++;
			cv_.notify_all();
			return "";
		}
	}
	try {
		ch->send(FrameType::Refuse, Stop{CLOUDLET_E_NOT_FOUND, "this cloudlet is not receiving the handoff "
		                                                       "that RESUME names"}.encode());
	} catch (const Error &) {
	}
	return "refused: RESUME of a handoff this cloudlet is not receiving";
}

void HandoffGate::expect_resume(const std::string &session, std::function<void()> interrupt) {
	std::lock_guard interrupting(interrupt_mu_);
	std::lock_guard lock(mu_);
	session_ = session;
	interrupt_ = std::move(interrupt);
}

AdmittedPeer HandoffGate::resumed(int ms, Progress &progress) {
	auto deadline = SteadyClock::now() + std::chrono::milliseconds(ms);
	std::unique_lock lock(mu_);
	while (!resume_) {
		if (SteadyClock::now() >= deadline)
			fail(CLOUDLET_E_TIMEOUT, "the source did not come back within " + std::to_string(ms / 1000.0) + " s");
		cv_.wait_until(lock, std::min(deadline, SteadyClock::now() + std::chrono::milliseconds(200)));
		if (resume_)
			break;
		lock.unlock();
		progress.check();
		lock.lock();
	}
	AdmittedPeer a = std::move(*resume_);
	resume_.reset();
	return a;
}

void HandoffGate::note(const std::string &line) {
	// Never waits: a caller's log that blocks (a stderr nobody reads) must
	// not hold up admission, and strangers must not flood it. Lines beyond
	// the rate, or while another is being written, are counted and said in
	// one line when the next second begins.
	std::unique_lock lock(log_mu_, std::try_to_lock);
	if (!lock) {
		suppressed_++;
		return;
	}
	auto now = SteadyClock::now();
	if (now - window_ >= std::chrono::seconds(1)) {
		if (uint64_t n = suppressed_.exchange(0))
			log_("handoff listener: " + std::to_string(n) + " more connections refused or dropped (at most " +
			     std::to_string(limits_.log_lines_per_second) + " lines a second)");
		window_ = now;
		lines_ = 0;
	}
	if (lines_ >= limits_.log_lines_per_second) {
		suppressed_++;
		return;
	}
	lines_++;
	log_(line);
}

AdmittedPeer HandoffGate::next(Progress &progress) {
	std::unique_lock lock(mu_);
	while (admitted_.empty()) {
		if (setup_error_)
			std::rethrow_exception(setup_error_);
		cv_.wait_for(lock, std::chrono::milliseconds(200));
		if (!admitted_.empty())
			break;
		lock.unlock();
		progress.check();
		lock.lock();
	}
	AdmittedPeer a = std::move(admitted_.front());
	admitted_.pop_front();
	taking_ = false;
	return a;
}

void HandoffGate::busy() {
	std::lock_guard lock(mu_);
	taking_ = false;
}

HandoffGate::Counts HandoffGate::counts() const {
	std::lock_guard lock(mu_);
	Counts c = counts_;
	c.pending = static_cast<size_t>(
	    std::count_if(pending_.begin(), pending_.end(), [](const auto &p) { return !p->evicted && !p->authenticated; }));
	return c;
}

} // namespace cloudlet::net
