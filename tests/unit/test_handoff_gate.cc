// The destination's front door (net/handoff_gate.h) on a loopback listener,
// against hostile peers all at once: 200 idle connections, slow drips,
// garbage, huge lengths, a wrong token, plaintext at a TLS door, a source
// of another protocol version, a replayed session (plaintext door), and
// connect/close loops. A legitimate source started in the middle of it is
// admitted; strangers are never admitted; the gate's unauthenticated
// connections, threads and memory stay bounded; every refused connection is
// one log line. Then the things a door must do: REFUSE as busy once the
// caller took its source, a rotation that breaks the credentials ends the
// wait with that error, and cancel ends it within 200 ms. Resume: a source
// that comes back with RESUME for the session in progress is handed to the
// waiting handoff (and the old connection interrupted); a RESUME for any
// other session, or after the handoff stopped expecting one, is refused.
#include "net/handoff_gate.h"
#include "net/handoff_messages.h"
#include "net/handoff_wire.h"
#include "net/secure_link.h"
#include "net/tcp.h"
#include "status_of.h"
#include "util/error.h"
#include "util/progress.h"

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet;
using namespace std::chrono_literals;
using net::FrameType;
using net::Security;

namespace {

const std::string kToken(44, 't'), kOther(44, 'o');

net::SecurityConfig psk(const std::string &token = kToken, Security mode = Security::TlsPsk) {
	net::SecurityConfig c;
	c.mode = mode;
	c.token = token;
	return c;
}

UniqueFd connect_to(unsigned port) {
	UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	sockaddr_in a{};
	a.sin_family = AF_INET;
	a.sin_port = htons(static_cast<uint16_t>(port));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof a) != 0)
		return UniqueFd();
	return fd;
}

// A source as handoff send is one: link, handshake, OFFER. Throws as it would.
void legit_source(unsigned port, const net::SecurityConfig &c, uint32_t version = net::kHandoffVersion) {
	UniqueFd fd = connect_to(port);
	if (!fd)
		throw Error(CLOUDLET_E_IO, "cannot connect");
	auto link = net::LinkSetup(c, net::LinkSetup::Role::Client).open(fd.get(), "gate", "127.0.0.1", 5000);
	net::FrameChannel ch(*link, "gate");
	ch.client_handshake(5000, version);
	ch.send(FrameType::Offer, std::string("{\"name\":\"legit\",\"header\":\"{}\"}"));
	// Hold the connection until the gate's owner is done with it.
	char b;
	while (recv(fd.get(), &b, 1, 0) > 0) {
	}
}

size_t open_fds() {
	size_t n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

size_t rss_kib() {
	std::ifstream f("/proc/self/status");
	std::string line;
	while (std::getline(f, line))
		if (line.rfind("VmRSS:", 0) == 0)
			return std::stoul(line.substr(6));
	return 0;
}

struct Lines {
	std::mutex mu;
	std::vector<std::string> v;
	net::HandoffGate::Log log() {
		return [this](const std::string &l) {
			std::lock_guard lock(mu);
			v.push_back(l);
		};
	}
	size_t count(const std::string &what) {
		std::lock_guard lock(mu);
		size_t n = 0;
		for (auto &l : v)
			n += l.find(what) != std::string::npos;
		return n;
	}
};

// What the attack may add to RSS: the gate's bounded threads and buffers
// (measured: about 6 MiB). Under AddressSanitizer freed memory sits in its
// quarantine (256 MiB by default) instead of going back, so the bound there
// is the quarantine's.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kRssAllowanceKiB = (256 + 64) * 1024;
#else
constexpr size_t kRssAllowanceKiB = 64 * 1024;
#endif

struct NoProgress : Progress {
	NoProgress() : Progress(nullptr, nullptr, nullptr) {}
};

} // namespace

static void test_hostile_peers_do_not_keep_a_source_out(void **) {
	net::TcpListener listener("127.0.0.1:0");
	unsigned port = listener.port();
	Lines lines;
	net::GateLimits limits;
	limits.handshake_ms = 1500;
	limits.log_lines_per_second = 1000000; // every line, to check each
	size_t fds0 = open_fds(), rss0 = rss_kib();
	std::atomic<bool> stop{false};
	std::vector<std::thread> attackers;
	std::atomic<size_t> max_pending{0};
	{
		net::HandoffGate gate(listener, psk(), limits, lines.log());
		// 200 idle connections, held until the end.
		attackers.emplace_back([&] {
			std::vector<UniqueFd> idle;
			for (int i = 0; i < 200; i++)
				idle.push_back(connect_to(port));
			while (!stop)
				std::this_thread::sleep_for(20ms);
		});
		// Slow drips: a byte every 300 ms, for as long as the socket lasts.
		for (int k = 0; k < 4; k++)
			attackers.emplace_back([&] {
				while (!stop) {
					UniqueFd fd = connect_to(port);
					while (!stop && send(fd.get(), "\x16", 1, MSG_NOSIGNAL) == 1)
						std::this_thread::sleep_for(300ms);
				}
			});
		// Garbage and huge lengths (a TLS record and a frame header that
		// claim the most they can), then close; and connect/close loops.
		attackers.emplace_back([&] {
			std::mt19937 rnd(18);
			while (!stop) {
				std::vector<uint8_t> g(1024);
				for (auto &b : g)
					b = static_cast<uint8_t>(rnd());
				const uint8_t tls_huge[] = {0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff};
				const uint8_t frame_huge[16] = {0xff, 0xff, 0xff, 0xff, 1};
				using Bytes = std::pair<const uint8_t *, size_t>;
				for (Bytes p : {Bytes{g.data(), g.size()}, Bytes{tls_huge, sizeof tls_huge},
				                Bytes{frame_huge, sizeof frame_huge}}) {
					UniqueFd fd = connect_to(port);
					(void)!send(fd.get(), p.first, p.second, MSG_NOSIGNAL);
				}
				for (int i = 0; i < 20; i++)
					connect_to(port); // and closed at once
				std::this_thread::sleep_for(50ms);
			}
		});
		// Authentication failures: another token, plaintext at a TLS door,
		// another protocol version (with the right token).
		attackers.emplace_back([&] {
			while (!stop) {
				status_of([&] { legit_source(port, psk(kOther)); });
				status_of([&] { legit_source(port, psk(kToken, Security::PlaintextUnsafe)); });
				status_of([&] { legit_source(port, psk(), 1); });
				std::this_thread::sleep_for(100ms);
			}
		});
		attackers.emplace_back([&] {
			while (!stop) {
				max_pending = std::max<size_t>(max_pending, gate.counts().pending);
				std::this_thread::sleep_for(10ms);
			}
		});
		std::this_thread::sleep_for(2s); // the attack is under way, the idle ones are in
		size_t under_attack_fds = open_fds();
		auto t0 = std::chrono::steady_clock::now();
		std::string source_error;
		std::thread source([&] { status_of([&] { legit_source(port, psk()); }, &source_error); });
		// A watchdog: a source kept out fails the test instead of hanging it.
		cloudlet_cancel watchdog;
		Progress progress(nullptr, nullptr, &watchdog);
		std::thread dog([&] {
			for (int i = 0; i < 100 && !stop; i++)
				std::this_thread::sleep_for(100ms);
			watchdog.triggered = 1;
		});
		net::AdmittedPeer a;
		int st = status_of([&] { a = gate.next(progress); });
		if (st) {
			stop = true;
			dog.join();
			source.join();
			for (auto &t : attackers)
				t.join();
			fail_msg("the legitimate source was not admitted within 10 s: %s", source_error.c_str());
		}
		double admitted_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
		print_message("# legitimate source admitted in %.3f s under attack\n", admitted_s);
		assert_true(a.first.type == FrameType::Offer);
		assert_non_null(strstr(a.first.text().c_str(), "legit"));
		// Admitted within its own handshake deadline: no stranger held it out.
		assert_true(admitted_s < limits.handshake_ms / 1000.0);
		std::this_thread::sleep_for(1s);
		stop = true;
		dog.join();
		a.link->shutdown();
		source.join();
		for (auto &t : attackers)
			t.join();
		net::HandoffGate::Counts c = gate.counts();
		size_t rss1 = rss_kib();
		print_message("# admitted %zu, refused %zu, dropped to make room %zu, most pending at once %zu; fds %zu -> %zu "
		              "under attack; RSS %zu -> %zu KiB\n",
		              c.admitted, c.refused, c.evicted, max_pending.load(), fds0, under_attack_fds, rss0, rss1);
		assert_int_equal(c.admitted, 1); // only the legitimate source
		assert_true(max_pending <= limits.per_address); // all from 127.0.0.1
		// The gate's sockets: at most `total` pending (the attackers' own
		// 200 idle sockets are in this process too).
		assert_true(under_attack_fds <= fds0 + 200 + limits.total + 32);
		assert_true(rss1 < rss0 + kRssAllowanceKiB);
		assert_true(c.evicted > 0);
	}
	// One line per refused connection, each naming its peer and why.
	std::lock_guard lock(lines.mu);
	size_t tls = 0, version = 0, dropped = 0;
	for (auto &l : lines.v) {
		assert_null(strchr(l.c_str(), '\n'));
		// A line per connection; the lines another was being written
		// during are counted and said in one line a second later.
		if (l.find("handoff listener: ") == 0 && l.find(" more connections refused or dropped") != std::string::npos)
			continue;
		assert_non_null(strstr(l.c_str(), "handoff connection from 127.0.0.1:"));
		tls += l.find("TLS handshake") != std::string::npos;
		version += l.find("protocol version 1") != std::string::npos;
		dropped += l.find("dropped") != std::string::npos;
	}
	print_message("# %zu lines: %zu TLS refusals, %zu version refusals, %zu dropped; e.g. '%s'\n", lines.v.size(), tls,
	              version, dropped, lines.v.empty() ? "" : lines.v.front().c_str());
	assert_true(tls > 0 && version > 0 && dropped > 0);
}

// A plaintext door (--insecure-plaintext): a recorded session replayed
// gets a new CHALLENGE and then fails its first frame's MAC; never admitted.
static void test_replayed_session_not_admitted(void **) {
	net::TcpListener listener("127.0.0.1:0");
	Lines lines;
	net::GateLimits limits;
	limits.handshake_ms = 1500;
	net::HandoffGate gate(listener, psk(kToken, Security::PlaintextUnsafe), limits, lines.log());
	std::vector<uint8_t> recorded;
	// What a source sends (HELLO, then OFFER under the keys of a session
	// that a destination's CHALLENGE once made), captured on a socket pair
	// and replayed to the door.
	int cp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, cp), 0);
	{
		auto sl = net::LinkSetup(psk(kToken, Security::PlaintextUnsafe), net::LinkSetup::Role::Client)
		              .open(cp[0], "x", "", 1000);
		net::FrameChannel s(*sl, "d");
		net::Greeting hello;
		s.send(FrameType::Hello, hello.encode());
		s.send(FrameType::Offer, std::string("{\"name\":\"x\",\"header\":\"{}\"}"));
		shutdown(cp[0], SHUT_WR);
		uint8_t b[4096];
		for (ssize_t n; (n = read(cp[1], b, sizeof b)) > 0;)
			recorded.insert(recorded.end(), b, b + n);
	}
	close(cp[0]);
	close(cp[1]);
	for (int i = 0; i < 5; i++) {
		UniqueFd fd = connect_to(listener.port());
		assert_int_equal(send(fd.get(), recorded.data(), recorded.size(), MSG_NOSIGNAL),
		                 static_cast<ssize_t>(recorded.size()));
		char b[512];
		while (recv(fd.get(), b, sizeof b, 0) > 0) {
		}
	}
	std::this_thread::sleep_for(300ms);
	assert_int_equal(gate.counts().admitted, 0);
	assert_int_equal(lines.count("MAC"), 5);
}

// Strangers cannot flood the log: at most log_lines_per_second lines, then
// one line saying how many more.
static void test_log_is_rate_limited(void **) {
	net::TcpListener listener("127.0.0.1:0");
	Lines lines;
	net::GateLimits limits;
	limits.log_lines_per_second = 5;
	{
		net::HandoffGate gate(listener, psk(), limits, lines.log());
		auto t0 = std::chrono::steady_clock::now();
		while (std::chrono::steady_clock::now() - t0 < 1500ms) {
			UniqueFd fd = connect_to(listener.port());
			(void)!send(fd.get(), "garbage!", 8, MSG_NOSIGNAL);
			std::this_thread::sleep_for(2ms);
		}
		std::this_thread::sleep_for(200ms);
		print_message("# %zu refused, %zu lines logged\n", gate.counts().refused, lines.v.size());
		assert_true(gate.counts().refused > 50);
	}
	assert_true(lines.v.size() <= 2 * 5 + 2);
	assert_true(lines.count("more connections refused or dropped") >= 1);
}

static void test_busy_rotation_and_cancel(void **) {
	net::TcpListener listener("127.0.0.1:0");
	unsigned port = listener.port();
	Lines lines;
	{
		net::HandoffGate gate(listener, psk(), {}, lines.log());
		std::thread first([&] { status_of([&] { legit_source(port, psk()); }); });
		NoProgress progress;
		net::AdmittedPeer a = gate.next(progress);
		// A second source while the first is served: REFUSE, busy.
		std::string msg;
		int st = status_of(
		    [&] {
			    UniqueFd fd = connect_to(port);
			    auto link = net::LinkSetup(psk(), net::LinkSetup::Role::Client).open(fd.get(), "gate", "", 5000);
			    net::FrameChannel ch(*link, "gate");
			    ch.client_handshake(5000);
			    ch.send(FrameType::Offer, std::string("{}"));
			    ch.expect(FrameType::Accept, 5000);
		    },
		    &msg);
		print_message("# %s\n", msg.c_str());
		assert_int_equal(st, CLOUDLET_E_BUSY);
		assert_non_null(strstr(msg.c_str(), "another handoff"));
		a.link->shutdown();
		first.join();
	}
	{
		// The credentials broke between connections (a rotation gone wrong):
		// the next connection ends the wait with that error.
		std::atomic<bool> broken{false};
		net::HandoffGate gate(listener, psk(), {}, lines.log(), [&] {
			if (broken)
				throw Error(CLOUDLET_E_PERMISSION, "token file T is readable by others (chmod 600 it)");
			return psk();
		});
		broken = true;
		UniqueFd fd = connect_to(port);
		NoProgress progress;
		std::string msg;
		assert_int_equal(status_of([&] { gate.next(progress); }, &msg), CLOUDLET_E_PERMISSION);
		assert_non_null(strstr(msg.c_str(), "readable by others"));
	}
	{
		// Cancel while waiting: within the 200 ms poll.
		net::HandoffGate gate(listener, psk(), {}, lines.log());
		cloudlet_cancel cancel;
		Progress progress(nullptr, nullptr, &cancel);
		std::thread t([&] {
			std::this_thread::sleep_for(300ms);
			cancel.triggered = 1;
		});
		auto t0 = std::chrono::steady_clock::now();
		assert_int_equal(status_of([&] { gate.next(progress); }), CLOUDLET_E_CANCELLED);
		double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
		t.join();
		assert_true(s < 0.3 + 0.5);
	}
}

// A source coming back after a cut: link, handshake, RESUME; RESUMED's count.
uint64_t resume_source(unsigned port, const std::string &session, uint64_t acked) {
	UniqueFd fd = connect_to(port);
	if (!fd)
		throw Error(CLOUDLET_E_IO, "cannot connect");
	auto link = net::LinkSetup(psk(), net::LinkSetup::Role::Client).open(fd.get(), "gate", "127.0.0.1", 5000);
	net::FrameChannel ch(*link, "gate");
	ch.client_handshake(5000);
	net::send_message(ch, net::Resume{session, acked});
	return net::expect_message<net::Resumed>(ch, 5000).applied;
}

static void test_resume_goes_to_its_session(void **) {
	net::TcpListener listener("127.0.0.1:0");
	unsigned port = listener.port();
	Lines lines;
	net::HandoffGate gate(listener, psk(), {}, lines.log());
	NoProgress progress;
	std::string msg;
	// Before any handoff expects one: refused.
	std::string session = net::new_session_id(), other = net::new_session_id();
	assert_int_equal(status_of([&] { resume_source(port, session, 0); }, &msg), CLOUDLET_E_NOT_FOUND);
	print_message("# %s\n", msg.c_str());
	std::thread first([&] { status_of([&] { legit_source(port, psk()); }); });
	net::AdmittedPeer a = gate.next(progress);
	std::atomic<int> interrupts{0};
	gate.expect_resume(session, [&] { interrupts++; });
	// Another session: refused, logged, nothing for the handoff.
	assert_int_equal(status_of([&] { resume_source(port, other, 0); }, &msg), CLOUDLET_E_NOT_FOUND);
	assert_int_equal(interrupts.load(), 0);
	// A malformed RESUME: refused as bad data.
	assert_int_not_equal(status_of([&] {
		                     UniqueFd fd = connect_to(port);
		                     auto link = net::LinkSetup(psk(), net::LinkSetup::Role::Client)
		                                     .open(fd.get(), "gate", "127.0.0.1", 5000);
		                     net::FrameChannel ch(*link, "gate");
		                     ch.client_handshake(5000);
		                     ch.send(FrameType::Resume, std::string("{\"session\":\"xyz\",\"acked\":1}"));
		                     ch.expect(FrameType::Resumed, 5000);
	                     }),
	                     CLOUDLET_OK);
	// No comeback yet: resumed() times out when asked to.
	auto t0 = std::chrono::steady_clock::now();
	assert_int_equal(status_of([&] { gate.resumed(300, progress); }), CLOUDLET_E_TIMEOUT);
	assert_true(std::chrono::steady_clock::now() - t0 < 1s);
	// The session's own: handed over (the old connection interrupted), answered.
	uint64_t applied = 0;
	std::thread back([&] { status_of([&] { applied = resume_source(port, session, 3); }, &msg); });
	net::AdmittedPeer r = gate.resumed(5000, progress);
	assert_int_equal(static_cast<int>(r.first.type), static_cast<int>(FrameType::Resume));
	net::Resume res = net::Resume::decode(r.first.payload, r.peer);
	assert_string_equal(res.session.c_str(), session.c_str());
	assert_int_equal(res.acked, 3);
	assert_int_equal(interrupts.load(), 1);
	net::send_message(*r.channel, net::Resumed{5});
	back.join();
	assert_int_equal(applied, 5);
	// Once the handoff stops expecting one (FINAL came): refused again.
	gate.expect_resume("", {});
	assert_int_equal(status_of([&] { resume_source(port, session, 0); }, &msg), CLOUDLET_E_NOT_FOUND);
	assert_int_equal(interrupts.load(), 1);
	assert_int_equal(gate.counts().resumed, 1);
	assert_true(lines.count("RESUME of a handoff this cloudlet is not receiving") >= 3);
	a.link->shutdown();
	r.link->shutdown();
	first.join();
}

int main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_resume_goes_to_its_session),
	    cmocka_unit_test(test_hostile_peers_do_not_keep_a_source_out),
	    cmocka_unit_test(test_replayed_session_not_admitted),
	    cmocka_unit_test(test_log_is_rate_limited),
	    cmocka_unit_test(test_busy_rotation_and_cancel),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
