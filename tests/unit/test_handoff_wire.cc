// The handoff frame layer (docs/protocols/handoff.md) over socket pairs and
// the links under it (net/secure_link.h): the handshake derives matching keys
// on both sides and frames round-trip in order over plaintext, TLS-PSK and
// TLS-X.509; a wrong token or certificate is refused in the handshake,
// before anything but the handshake was sent; TLS hides a marker that
// plaintext shows; a peer of another version gets REFUSE with the reason;
// an altered, replayed, oversized or truncated frame, ABORT/REFUSE and
// silence all end in clear errors.
#include "net/handoff_messages.h"
#include "net/handoff_wire.h"
#include "net/secure_link.h"
#include "status_of.h"
#include "util/error.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet;
using net::FrameChannel;
using net::FrameType;
using net::LinkSetup;
using net::Security;

namespace {

const std::string kToken(40, 'k'), kOther(40, 'x');
std::string g_pki; // made by tests/data/make-test-pki.sh

struct Pair {
	int fd[2];
	Pair() { assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0); }
	~Pair() {
		close(fd[0]);
		close(fd[1]);
	}
};

net::SecurityConfig config(Security mode, const std::string &token = kToken, const std::string &pki = "good") {
	net::SecurityConfig c;
	c.mode = mode;
	if (mode == Security::TlsX509)
		c.x509_dir = g_pki + "/" + pki;
	else
		c.token = token;
	return c;
}

// A plaintext link over one end of a pair, for the frame-level cases.
std::unique_ptr<net::Link> plain(int fd, const std::string &token = kToken) {
	return LinkSetup(config(Security::PlaintextUnsafe, token), LinkSetup::Role::Client).open(fd, "peer", "", 1000);
}

// Both ends of a connection: links (handshake in two threads) and channels.
struct Session {
	std::unique_ptr<net::Link> src_link, dst_link;
	std::unique_ptr<FrameChannel> src, dst;
};

// Opens both links; statuses of each side's failure (0: none) and their messages.
struct Opened {
	int src_status = 0, dst_status = 0;
	std::string src_msg, dst_msg;
};

Opened open_pair(Pair &p, const net::SecurityConfig &sc, const net::SecurityConfig &dc, Session &out,
                 const std::string &host = "127.0.0.1") {
	Opened r;
	LinkSetup src(sc, LinkSetup::Role::Client), dst(dc, LinkSetup::Role::Server);
	std::thread t([&] {
		r.dst_status = status_of([&] { out.dst_link = dst.open(p.fd[1], "source", "", 5000); }, &r.dst_msg);
		if (r.dst_status)
			shutdown(p.fd[1], SHUT_RDWR); // what the destination does with a refused peer
	});
	r.src_status = status_of([&] { out.src_link = src.open(p.fd[0], "destination", host, 5000); }, &r.src_msg);
	if (r.src_status)
		shutdown(p.fd[0], SHUT_RDWR);
	t.join();
	if (!r.src_status && !r.dst_status) {
		out.src = std::make_unique<FrameChannel>(*out.src_link, "destination");
		out.dst = std::make_unique<FrameChannel>(*out.dst_link, "source");
	}
	print_message("# source: %s\n# destination: %s\n", r.src_msg.c_str(), r.dst_msg.c_str());
	return r;
}

void handshake(Session &s) {
	std::thread t([&] { s.dst->server_handshake(5000); });
	s.src->client_handshake(5000);
	t.join();
}

} // namespace

static void frames_in(Security mode) {
	Pair p;
	Session ss;
	Opened o = open_pair(p, config(mode), config(mode), ss);
	assert_int_equal(o.src_status, 0);
	assert_int_equal(o.dst_status, 0);
	print_message("# %s\n", ss.src_link->description().c_str());
	assert_true((mode == Security::PlaintextUnsafe) == (ss.src_link->description().find("TLSv1.3") == std::string::npos));
	handshake(ss);
	FrameChannel &s = *ss.src, &d = *ss.dst;
	std::vector<uint8_t> big(net::kMaxFramePayload);
	for (size_t i = 0; i < big.size(); i++)
		big[i] = static_cast<uint8_t>(i * 7);
	std::thread sender([&] {
		s.send(FrameType::Offer, "{\"base_id\":\"x\"}");
		s.send(FrameType::Items, big.data(), big.size());
		s.send(FrameType::Go, nullptr, 0);
	});
	assert_string_equal(d.expect(FrameType::Offer, 5000).text().c_str(), "{\"base_id\":\"x\"}");
	net::Frame f = d.expect(FrameType::Items, 5000);
	assert_true(f.payload == big);
	assert_int_equal(d.expect(FrameType::Go, 5000).payload.size(), 0);
	sender.join();
	d.send(FrameType::Accept, "{}");
	assert_string_equal(s.expect(FrameType::Accept, 5000).text().c_str(), "{}");
	assert_true(s.bytes_sent() > big.size());
	assert_int_equal(s.bytes_sent(), d.bytes_received());
	// The frame keys come from the TLS session: both sides agree, and they
	// are not the token.
	assert_true(ss.src_link->frame_secret() == ss.dst_link->frame_secret());
	assert_true((ss.src_link->frame_secret() == kToken) == (mode == Security::PlaintextUnsafe));
}

static void test_handshake_and_frames(void **) {
	frames_in(Security::PlaintextUnsafe);
	frames_in(Security::TlsPsk);
	frames_in(Security::TlsX509);
}

// TLS refuses what cannot authenticate, in the TLS handshake (before any
// frame): another token, a certificate of another CA, a server certificate
// for another host, a plaintext peer, and a TLS peer of the other kind.
static void test_tls_refusals(void **) {
	struct Case {
		const char *what;
		net::SecurityConfig src, dst;
		std::string host = "127.0.0.1";
	};
	std::vector<Case> cases = {
	    {"PSK: another token", config(Security::TlsPsk, kOther), config(Security::TlsPsk)},
	    {"X.509: the source's CA is another", config(Security::TlsX509, kToken, "rogue"), config(Security::TlsX509)},
	    {"X.509: the destination's CA is another", config(Security::TlsX509), config(Security::TlsX509, kToken, "rogue")},
	    {"X.509: the destination's certificate names another host", config(Security::TlsX509),
	     config(Security::TlsX509, kToken, "wrong-name")},
	    {"X.509: the source connects by another name", config(Security::TlsX509), config(Security::TlsX509), "cloudlet.example"},
	    {"X.509 source, PSK destination", config(Security::TlsX509), config(Security::TlsPsk)},
	    {"PSK source, X.509 destination", config(Security::TlsPsk), config(Security::TlsX509)},
	};
	for (auto &c : cases) {
		print_message("# case: %s\n", c.what);
		Pair p;
		Session ss;
		Opened o = open_pair(p, c.src, c.dst, ss, c.host);
		assert_int_equal(o.src_status, CLOUDLET_E_PERMISSION);
		assert_true(o.dst_status == CLOUDLET_E_PERMISSION || o.dst_status == CLOUDLET_E_IO);
		assert_non_null(strstr(o.src_msg.c_str(), "TLS handshake with destination failed"));
	}
	{
		// A plaintext source at a TLS destination: the destination refuses
		// it in the handshake; the source never gets a CHALLENGE.
		Pair p;
		std::string msg;
		int st = 0;
		std::thread t([&] {
			st = status_of([&] { LinkSetup(config(Security::TlsPsk), LinkSetup::Role::Server).open(p.fd[1], "source", "", 5000); }, &msg);
			shutdown(p.fd[1], SHUT_RDWR);
		});
		auto link = plain(p.fd[0]);
		FrameChannel s(*link, "destination");
		std::string smsg;
		int sst = status_of([&] { s.client_handshake(5000); }, &smsg);
		t.join();
		print_message("# %s\n# %s\n", msg.c_str(), smsg.c_str());
		assert_int_equal(st, CLOUDLET_E_PERMISSION);
		assert_int_not_equal(sst, 0);
	}
}

// What a relay between the two sees: under TLS none of a marker sent in a
// frame, in plaintext the marker itself (the relay can see it).
static std::string relayed(Security mode, const std::string &marker) {
	Pair a, b; // source <-> relay <-> destination
	std::string seen;
	std::thread relay([&] {
		// Both directions until either side closes: poll both ends.
		std::vector<uint8_t> buf(1 << 16);
		int in[2] = {a.fd[1], b.fd[0]}, out[2] = {b.fd[0], a.fd[1]};
		for (;;) {
			pollfd p[2] = {{in[0], POLLIN, 0}, {in[1], POLLIN, 0}};
			if (poll(p, 2, 5000) <= 0)
				return;
			for (int i = 0; i < 2; i++) {
				if (!(p[i].revents & (POLLIN | POLLHUP)))
					continue;
				ssize_t n = read(in[i], buf.data(), buf.size());
				if (n <= 0) {
					shutdown(out[i], SHUT_WR);
					return;
				}
				if (i == 0)
					seen.append(reinterpret_cast<char *>(buf.data()), static_cast<size_t>(n));
				if (write(out[i], buf.data(), static_cast<size_t>(n)) != n)
					return;
			}
		}
	});
	{
		LinkSetup src(config(mode), LinkSetup::Role::Client), dst(config(mode), LinkSetup::Role::Server);
		std::unique_ptr<net::Link> dl;
		std::thread t([&] { dl = dst.open(b.fd[1], "source", "", 5000); });
		auto sl = src.open(a.fd[0], "destination", "127.0.0.1", 5000);
		t.join();
		FrameChannel s(*sl, "destination"), d(*dl, "source");
		std::thread h([&] { d.server_handshake(5000); });
		s.client_handshake(5000);
		h.join();
		s.send(FrameType::Items, marker);
		assert_string_equal(d.expect(FrameType::Items, 5000).text().c_str(), marker.c_str());
		sl->shutdown();
	}
	relay.join();
	return seen;
}

static void test_tls_hides_what_plaintext_shows(void **) {
	const std::string marker = "cloudlet-marker-7f3a9c-the-guest-secret";
	assert_true(relayed(Security::PlaintextUnsafe, marker).find(marker) != std::string::npos);
	assert_true(relayed(Security::TlsPsk, marker).find(marker) == std::string::npos);
	assert_true(relayed(Security::TlsX509, marker).find(marker) == std::string::npos);
}

// Setup errors come when the credentials are loaded, not at the first peer.
static void test_setup_errors_at_once(void **) {
	std::string msg;
	net::SecurityConfig c = config(Security::TlsX509);
	c.x509_dir = g_pki + "/none";
	assert_int_not_equal(status_of([&] { LinkSetup(c, LinkSetup::Role::Server); }, &msg), 0);
	assert_non_null(strstr(msg.c_str(), "ca-cert.pem"));
	// A key that is not the certificate's.
	std::string mixed = g_pki + "/mixed";
	mkdir(mixed.c_str(), 0700);
	std::string cmd = "cp " + g_pki + "/good/ca-cert.pem " + g_pki + "/good/server-cert.pem " + mixed + "/ && cp " +
	                  g_pki + "/rogue/server-key.pem " + mixed + "/";
	assert_int_equal(system(cmd.c_str()), 0);
	c.x509_dir = mixed;
	assert_int_equal(status_of([&] { LinkSetup(c, LinkSetup::Role::Server); }, &msg), CLOUDLET_E_INVALID_ARG);
	print_message("# %s\n", msg.c_str());
	assert_non_null(strstr(msg.c_str(), "server-key.pem"));
	assert_int_equal(status_of([&] { LinkSetup(config(Security::TlsPsk, "short"), LinkSetup::Role::Client); }, &msg),
	                 CLOUDLET_E_INVALID_ARG);
}

// What a receiver asks at each connection: is the setup still what the
// credentials say? A token that changed, or a certificate file replaced,
// is not; the same ones are.
static void test_setup_knows_when_it_is_current(void **) {
	LinkSetup p(config(Security::TlsPsk), LinkSetup::Role::Server);
	assert_true(p.current(config(Security::TlsPsk)));
	assert_false(p.current(config(Security::TlsPsk, kOther)));
	assert_false(p.current(config(Security::PlaintextUnsafe)));
	std::string dir = g_pki + "/renewed";
	assert_int_equal(system(("cp -a " + g_pki + "/good " + dir).c_str()), 0);
	net::SecurityConfig c = config(Security::TlsX509);
	c.x509_dir = dir;
	LinkSetup x(c, LinkSetup::Role::Server);
	assert_true(x.current(c));
	// A renewal: the server certificate replaced by a new file (here the
	// same content, as `cp` then `mv` into place would leave it).
	assert_int_equal(system(("cp " + dir + "/server-cert.pem " + dir + "/new.pem && mv " + dir + "/new.pem " + dir +
	                         "/server-cert.pem").c_str()),
	                 0);
	assert_false(x.current(c));
	assert_true(LinkSetup(c, LinkSetup::Role::Server).current(c));
}

// A source of another protocol version is told REFUSE with the reason.
static void test_version_mismatch_refused(void **) {
	for (Security mode : {Security::PlaintextUnsafe, Security::TlsPsk}) {
		Pair p;
		Session ss;
		assert_int_equal(open_pair(p, config(mode), config(mode), ss).src_status, 0);
		std::string dmsg, smsg;
		int dst = 0;
		std::thread t([&] { dst = status_of([&] { ss.dst->server_handshake(5000); }, &dmsg); });
		int sst = status_of([&] { ss.src->client_handshake(5000, 1); }, &smsg);
		t.join();
		print_message("# destination: %s\n# source: %s\n", dmsg.c_str(), smsg.c_str());
		assert_int_equal(dst, CLOUDLET_E_UNSUPPORTED);
		assert_int_equal(sst, CLOUDLET_E_UNSUPPORTED);
		assert_non_null(strstr(smsg.c_str(), "refused the handoff: this cloudlet speaks handoff protocol version 2, not 1"));
	}
}

static void test_wrong_token_refused_on_first_frame(void **) {
	Pair p;
	auto sl = plain(p.fd[0]), dl = plain(p.fd[1], kOther);
	FrameChannel s(*sl, "destination"), d(*dl, "source");
	std::string dmsg, smsg;
	int dst = 0;
	std::thread t([&] {
		dst = status_of([&] { d.server_handshake(5000); }, &dmsg);
		shutdown(p.fd[1], SHUT_RDWR); // the destination closes
	});
	int sst = status_of([&] { s.client_handshake(5000); }, &smsg);
	t.join();
	print_message("# destination: %s\n# source: %s\n", dmsg.c_str(), smsg.c_str());
	assert_int_equal(dst, CLOUDLET_E_PERMISSION);
	assert_int_equal(sst, CLOUDLET_E_PERMISSION);
	assert_non_null(strstr(dmsg.c_str(), "token"));
	assert_non_null(strstr(smsg.c_str(), "token"));
}

static void test_altered_frame(void **) {
	// A man in the middle flips one payload bit: the receiver's MAC check fails.
	Pair a, b;
	auto sl = plain(a.fd[0]);
	FrameChannel s(*sl, "destination");
	std::thread relay([&] {
		std::vector<uint8_t> buf(1 << 16);
		ssize_t n = read(a.fd[1], buf.data(), buf.size()); // the whole first frame (small)
		buf[20] ^= 1;
		assert_int_equal(write(b.fd[0], buf.data(), static_cast<size_t>(n)), n);
	});
	s.send(FrameType::Offer, "{\"base_id\":\"abcdef\"}");
	relay.join();
	// The receiver is past the handshake: a MAC failure is corruption, not a token problem.
	auto dl = plain(b.fd[1]);
	FrameChannel d(*dl, "source");
	std::string msg;
	// First frame of a session is verified as HELLO-keyed: still a MAC mismatch.
	int st = status_of([&] { d.receive(1000); }, &msg);
	print_message("# %s\n", msg.c_str());
	assert_true(st == CLOUDLET_E_PERMISSION || st == CLOUDLET_E_CORRUPT);
	assert_non_null(strstr(msg.c_str(), "MAC"));
}

static void test_replay_and_reorder(void **) {
	Pair a, b;
	auto sl = plain(a.fd[0]);
	FrameChannel s(*sl, "destination");
	s.send(FrameType::Offer, "one");
	s.send(FrameType::Offer, "two");
	std::vector<uint8_t> buf(4096);
	ssize_t n = read(a.fd[1], buf.data(), buf.size());
	assert_true(n > 0);
	size_t first = 4 + (buf[0] | buf[1] << 8);
	// Deliver frame 0 twice: the second copy's sequence number is stale.
	assert_int_equal(write(b.fd[0], buf.data(), first), static_cast<ssize_t>(first));
	assert_int_equal(write(b.fd[0], buf.data(), first), static_cast<ssize_t>(first));
	auto dl = plain(b.fd[1]);
	FrameChannel d(*dl, "source");
	assert_string_equal(d.receive(1000).text().c_str(), "one");
	std::string msg;
	assert_int_equal(status_of([&] { d.receive(1000); }, &msg), CLOUDLET_E_CORRUPT);
	assert_non_null(strstr(msg.c_str(), "sequence"));
}

// The status and message of the first frame received after `head` (16
// bytes) was written, then the writer's side closed if `close_after`.
static int first_frame_status(const uint8_t *head, bool close_after, std::string *msg, int timeout_ms = 1000) {
	Pair p;
	if (head)
		assert_int_equal(write(p.fd[0], head, 16), 16);
	if (close_after)
		shutdown(p.fd[0], SHUT_WR);
	auto dl = plain(p.fd[1]);
	FrameChannel d(*dl, "source");
	return status_of([&] { d.receive(timeout_ms); }, msg);
}

static void test_bad_length_truncation_silence(void **) {
	std::string msg;
	const uint8_t huge[16] = {0xff, 0xff, 0xff, 0x7f, 3};
	assert_int_equal(first_frame_status(huge, false, &msg), CLOUDLET_E_CORRUPT);
	assert_non_null(strstr(msg.c_str(), "length"));
	const uint8_t truncated[16] = {100, 0, 0, 0, 3};
	assert_int_equal(first_frame_status(truncated, true, &msg), CLOUDLET_E_IO);
	assert_non_null(strstr(msg.c_str(), "closed"));
	assert_int_equal(first_frame_status(nullptr, false, &msg, 200), CLOUDLET_E_TIMEOUT);
	// A first frame (the greeting) longer than a greeting can be is refused
	// from its header: a stranger's length is not waited for.
	const uint8_t long_greeting[16] = {0, 0x20, 0, 0, 1}; // 8 KiB
	assert_int_equal(first_frame_status(long_greeting, false, &msg), CLOUDLET_E_CORRUPT);
	assert_non_null(strstr(msg.c_str(), "length"));
}

static void test_abort_and_refuse_carry_reason(void **) {
	Pair p;
	Session ss;
	open_pair(p, config(Security::TlsPsk), config(Security::TlsPsk), ss);
	handshake(ss);
	FrameChannel &s = *ss.src, &d = *ss.dst;
	d.send(FrameType::Refuse, net::Stop{CLOUDLET_E_NOT_FOUND, "this cloudlet does not have base 1234"}.encode());
	std::string msg;
	assert_int_equal(status_of([&] { s.expect(FrameType::Accept, 1000); }, &msg), CLOUDLET_E_NOT_FOUND);
	assert_non_null(strstr(msg.c_str(), "refused the handoff: this cloudlet does not have base 1234"));
	// A receiver taking several types gets the same error from the frame itself.
	d.send(FrameType::Abort, net::Stop{CLOUDLET_E_CANCELLED, "stopped by its operator"}.encode());
	net::Frame abort = s.receive(1000);
	// The peer's cancel is not ours: the connection ended (a serving
	// receiver must not stop as if interrupted).
	assert_int_equal(status_of([&] { s.fail_on_peer_stop(abort); }, &msg), CLOUDLET_E_IO);
	assert_non_null(strstr(msg.c_str(), "aborted the handoff: stopped by its operator (there)"));
	d.send(FrameType::Abort, net::Stop{CLOUDLET_E_CORRUPT, "item 3 is out of range"}.encode());
	net::Frame bad = s.receive(1000);
	assert_int_equal(status_of([&] { s.fail_on_peer_stop(bad); }, &msg), CLOUDLET_E_CORRUPT);
	s.fail_on_peer_stop(net::Frame{FrameType::Items, {}}); // other frames pass
	d.send(FrameType::Running, "{}");
	assert_int_equal(status_of([&] { s.expect(FrameType::Ready, 1000); }, &msg), CLOUDLET_E_CORRUPT);
	assert_non_null(strstr(msg.c_str(), "RUNNING where READY"));
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: %s make-test-pki.sh\n", argv[0]);
		return 2;
	}
	char tmpl[] = "/tmp/cloudlet-pki-XXXXXX";
	if (!mkdtemp(tmpl))
		return 2;
	g_pki = tmpl;
	if (system((std::string(argv[1]) + " " + g_pki).c_str()) != 0) {
		fprintf(stderr, "cannot make the test certificates\n");
		return 2;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_and_frames),
	    cmocka_unit_test(test_tls_refusals),
	    cmocka_unit_test(test_tls_hides_what_plaintext_shows),
	    cmocka_unit_test(test_setup_errors_at_once),
	    cmocka_unit_test(test_setup_knows_when_it_is_current),
	    cmocka_unit_test(test_version_mismatch_refused),
	    cmocka_unit_test(test_wrong_token_refused_on_first_frame),
	    cmocka_unit_test(test_altered_frame),
	    cmocka_unit_test(test_replay_and_reorder),
	    cmocka_unit_test(test_bad_length_truncation_silence),
	    cmocka_unit_test(test_abort_and_refuse_carry_reason),
	};
	int rc = cmocka_run_group_tests(tests, nullptr, nullptr);
	if (system(("rm -rf " + g_pki).c_str()) != 0)
		rc = rc ? rc : 1;
	return rc;
}
