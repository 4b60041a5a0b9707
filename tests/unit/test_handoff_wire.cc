// The handoff frame layer (docs/protocols/handoff.md) over a socket pair:
// the handshake derives matching keys on both sides and frames round-trip
// in order; a wrong token is refused on the first frame, before anything
// but HELLO was sent; an altered, replayed, oversized or truncated frame,
// a version mismatch, ABORT/REFUSE and silence all end in clear errors.
#include "net/handoff_messages.h"
#include "net/handoff_wire.h"
#include "status_of.h"
#include "util/error.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet;
using net::FrameChannel;
using net::FrameType;

namespace {

const std::string kToken(40, 'k'), kOther(40, 'x');

struct Pair {
	int fd[2];
	Pair() { assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0); }
	~Pair() {
		close(fd[0]);
		close(fd[1]);
	}
};

} // namespace

static void test_handshake_and_frames(void **) {
	Pair p;
	FrameChannel s(p.fd[0], "destination", kToken), d(p.fd[1], "source", kToken);
	std::thread t([&] { d.server_handshake(5000); });
	s.client_handshake(5000);
	t.join();
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
}

static void test_wrong_token_refused_on_first_frame(void **) {
	Pair p;
	FrameChannel s(p.fd[0], "destination", kToken), d(p.fd[1], "source", kOther);
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
	FrameChannel s(a.fd[0], "destination", kToken);
	std::thread relay([&] {
		std::vector<uint8_t> buf(1 << 16);
		ssize_t n = read(a.fd[1], buf.data(), buf.size()); // the whole first frame (small)
		buf[20] ^= 1;
		assert_int_equal(write(b.fd[0], buf.data(), static_cast<size_t>(n)), n);
	});
	s.send(FrameType::Offer, "{\"base_id\":\"abcdef\"}");
	relay.join();
	// The receiver is past the handshake: a MAC failure is corruption, not a token problem.
	FrameChannel d(b.fd[1], "source", kToken);
	std::string msg;
	// First frame of a session is verified as HELLO-keyed: still a MAC mismatch.
	int st = status_of([&] { d.receive(1000); }, &msg);
	print_message("# %s\n", msg.c_str());
	assert_true(st == CLOUDLET_E_PERMISSION || st == CLOUDLET_E_CORRUPT);
	assert_non_null(strstr(msg.c_str(), "MAC"));
}

static void test_replay_and_reorder(void **) {
	Pair a, b;
	FrameChannel s(a.fd[0], "destination", kToken);
	s.send(FrameType::Offer, "one");
	s.send(FrameType::Offer, "two");
	std::vector<uint8_t> buf(4096);
	ssize_t n = read(a.fd[1], buf.data(), buf.size());
	assert_true(n > 0);
	size_t first = 4 + (buf[0] | buf[1] << 8);
	// Deliver frame 0 twice: the second copy's sequence number is stale.
	assert_int_equal(write(b.fd[0], buf.data(), first), static_cast<ssize_t>(first));
	assert_int_equal(write(b.fd[0], buf.data(), first), static_cast<ssize_t>(first));
	FrameChannel d(b.fd[1], "source", kToken);
	assert_string_equal(d.receive(1000).text().c_str(), "one");
	std::string msg;
	assert_int_equal(status_of([&] { d.receive(1000); }, &msg), CLOUDLET_E_CORRUPT);
	assert_non_null(strstr(msg.c_str(), "sequence"));
}

static void test_bad_length_truncation_silence(void **) {
	{
		Pair p;
		uint8_t head[16] = {0xff, 0xff, 0xff, 0x7f, 3};
		assert_int_equal(write(p.fd[0], head, 16), 16);
		FrameChannel d(p.fd[1], "source", kToken);
		std::string msg;
		assert_int_equal(status_of([&] { d.receive(1000); }, &msg), CLOUDLET_E_CORRUPT);
		assert_non_null(strstr(msg.c_str(), "length"));
	}
	{
		Pair p;
		uint8_t head[16] = {100, 0, 0, 0, 3};
		assert_int_equal(write(p.fd[0], head, 16), 16);
		shutdown(p.fd[0], SHUT_WR);
		FrameChannel d(p.fd[1], "source", kToken);
		std::string msg;
		assert_int_equal(status_of([&] { d.receive(1000); }, &msg), CLOUDLET_E_IO);
		assert_non_null(strstr(msg.c_str(), "closed"));
	}
	{
		Pair p;
		FrameChannel d(p.fd[1], "source", kToken);
		assert_int_equal(status_of([&] { d.receive(200); }), CLOUDLET_E_TIMEOUT);
	}
}

static void test_abort_and_refuse_carry_reason(void **) {
	Pair p;
	FrameChannel s(p.fd[0], "destination", kToken), d(p.fd[1], "source", kToken);
	std::thread t([&] { d.server_handshake(5000); });
	s.client_handshake(5000);
	t.join();
	d.send(FrameType::Refuse, net::Stop{CLOUDLET_E_NOT_FOUND, "this cloudlet does not have base 1234"}.encode());
	std::string msg;
	assert_int_equal(status_of([&] { s.expect(FrameType::Accept, 1000); }, &msg), CLOUDLET_E_NOT_FOUND);
	assert_non_null(strstr(msg.c_str(), "refused the handoff: this cloudlet does not have base 1234"));
	// A receiver taking several types gets the same error from the frame itself.
	d.send(FrameType::Abort, net::Stop{CLOUDLET_E_CANCELLED, "stopped by its operator"}.encode());
	net::Frame abort = s.receive(1000);
	assert_int_equal(status_of([&] { s.fail_on_peer_stop(abort); }, &msg), CLOUDLET_E_CANCELLED);
	assert_non_null(strstr(msg.c_str(), "aborted the handoff: stopped by its operator"));
	s.fail_on_peer_stop(net::Frame{FrameType::Items, {}}); // other frames pass
	d.send(FrameType::Running, "{}");
	assert_int_equal(status_of([&] { s.expect(FrameType::Ready, 1000); }, &msg), CLOUDLET_E_CORRUPT);
	assert_non_null(strstr(msg.c_str(), "RUNNING where READY"));
}

int main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_and_frames),
	    cmocka_unit_test(test_wrong_token_refused_on_first_frame),
	    cmocka_unit_test(test_altered_frame),
	    cmocka_unit_test(test_replay_and_reorder),
	    cmocka_unit_test(test_bad_length_truncation_silence),
	    cmocka_unit_test(test_abort_and_refuse_carry_reason),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
