// The handoff's parts below the operations, one by one:
//  - every message of net/handoff_messages.h encodes to the bytes the
//    protocol has always sent (an old and a new build interoperate), round-
//    trips, and each decoder refuses truncated, oversized and wrong fields;
//  - net/tcp.h: addresses parsed, a loopback connection with the options set,
//    errors naming the address, a cancellable accept;
//  - engine::LinkRate on a synthetic ACK sequence (the figures asserted);
//  - engine::DirtyQueue: the newest version wins, first-come order, the
//    budget's backpressure, abort;
//  - engine::ItemBatch: encode/decode round trip with every kind and codec,
//    and batches the decoder refuses.
#include "engine/dirty_queue.h"
#include "engine/handoff_items.h"
#include "engine/link_rate.h"
#include "net/handoff_messages.h"
#include "net/tcp.h"
#include "largest_alloc.h"
#include "status_of.h"
#include "util/error.h"
#include "util/le_bytes.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <new>
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet;
using net::Payload;

namespace {

const std::string kPeer = "198.51.100.7:7000";

Payload bytes(const std::string &s) { return Payload(s.begin(), s.end()); }
std::string text(const Payload &p) { return std::string(p.begin(), p.end()); }

// A decoder refuses `p` as corrupt, naming the message and the peer.
void refused(const std::function<void(const Payload &)> &decode, const Payload &p, const char *what) {
	std::string msg;
	int st = status_of([&] { decode(p); }, &msg);
	if (st != CLOUDLET_E_CORRUPT)
		fail_msg("%s: '%s' gave status %d (%s), not CLOUDLET_E_CORRUPT", what, text(p).c_str(), st, msg.c_str());
	if (msg.find(what) == std::string::npos || msg.find(kPeer) == std::string::npos)
		fail_msg("%s: the message does not name the message and the peer: %s", what, msg.c_str());
}

std::vector<uint8_t> page(uint32_t seed) {
	std::vector<uint8_t> p(4096);
	std::mt19937 rng(seed);
	for (auto &b : p)
		b = static_cast<uint8_t>(rng());
	return p;
}

struct TempDir {
	std::string path;
	TempDir() {
		char t[] = "/tmp/test-handoff-engines-XXXXXX";
		assert_non_null(mkdtemp(t));
		path = t;
	}
	~TempDir() { rmdir(path.c_str()); }
};

Clock::time_point at(Clock::time_point t0, double s) {
	return t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

} // namespace

// --- messages ------------------------------------------------------------------

static void test_messages_encode_as_before(void **) {
	// The exact bytes the operations built by hand before the messages had a
	// module: these must not change, or an old build and a new one no longer
	// understand each other.
	assert_string_equal(text(net::Offer{"vm-1", "{\"a\":\"b/c\"}"}.encode()).c_str(),
	                    "{\"name\":\"vm-1\",\"header\":\"{\\\"a\\\":\\\"b\\/c\\\"}\"}");
	assert_string_equal(text(net::Accept{}.encode()).c_str(), "{}");
	assert_string_equal(text(net::Stop{CLOUDLET_E_NOT_FOUND, "no base"}.encode()).c_str(),
	                    "{\"status\":-6,\"message\":\"no base\"}");
	Payload ack = net::Ack{3, 0x0102030405060708ull}.encode();
	Payload want_ack = {3, 0, 0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1};
	assert_true(ack == want_ack);
	Payload fin = net::Final{1, 2, 3, {0xaa, 0xbb}}.encode();
	std::string json = "{\"memory_items\":1,\"disk_items\":2,\"stored_items\":3}";
	assert_int_equal(fin.size(), 4 + json.size() + 2);
	assert_int_equal(le::get32(fin.data()), json.size());
	assert_string_equal(std::string(fin.begin() + 4, fin.end() - 2).c_str(), json.c_str());
	assert_int_equal(fin[fin.size() - 2], 0xaa);
	assert_int_equal(fin.back(), 0xbb);
	assert_string_equal(text(net::Ready{"vm-1", "u-1"}.encode()).c_str(), "{\"name\":\"vm-1\",\"uuid\":\"u-1\"}");
	assert_int_equal(net::Go{}.encode().size(), 0);
	net::Running r;
	r.name = "vm-1";
	r.uuid = "u-1";
	r.macs = {"52:54:00:00:00:01"};
	r.nic_seconds = 0.5;
	assert_string_equal(text(r.encode()).c_str(),
	                    "{\"name\":\"vm-1\",\"uuid\":\"u-1\",\"macs\":[\"52:54:00:00:00:01\"],\"nic_seconds\":0.5}");
	r.nic_error = "timeout";
	assert_non_null(strstr(text(r.encode()).c_str(), ",\"nic_error\":\"timeout\"}"));
	net::Greeting g;
	for (size_t i = 0; i < g.nonce.size(); i++)
		g.nonce[i] = static_cast<uint8_t>(i);
	Payload gp = g.encode();
	assert_int_equal(gp.size(), 44);
	assert_memory_equal(gp.data(), "CLTHOFF1\x02\x00\x00\x00", 12);
	assert_int_equal(gp[12], 0);
	assert_int_equal(gp[43], 31);
}

static void test_messages_round_trip(void **) {
	net::Greeting g;
	g.version = 7;
	g.nonce.fill(0x5a);
	net::Greeting g2 = net::Greeting::decode(g.encode(), "HELLO", kPeer);
	assert_int_equal(g2.version, 7);
	assert_true(g2.nonce == g.nonce);

	net::Offer o = net::Offer::decode(net::Offer{"vm \"x\"", "{\"disks\":[]}"}.encode(), kPeer);
	assert_string_equal(o.name.c_str(), "vm \"x\"");
	assert_string_equal(o.header.c_str(), "{\"disks\":[]}");
	assert_false(net::Accept::decode(net::Accept{}.encode(), kPeer).resumable());
	net::Accept acc;
	acc.session = net::new_session_id();
	acc.resume_seconds = 30;
	net::Accept acc2 = net::Accept::decode(acc.encode(), kPeer);
	assert_true(acc2.resumable());
	assert_string_equal(acc2.session.c_str(), acc.session.c_str());
	assert_true(acc2.resume_seconds == 30);
	assert_string_not_equal(net::new_session_id().c_str(), acc.session.c_str());
	net::Resume res = net::Resume::decode(net::Resume{acc.session, UINT64_MAX}.encode(), kPeer);
	assert_string_equal(res.session.c_str(), acc.session.c_str());
	assert_true(res.acked == UINT64_MAX);
	assert_int_equal(net::Resumed::decode(net::Resumed{42}.encode(), kPeer).applied, 42);

	net::Stop s = net::Stop::decode(net::Stop{CLOUDLET_E_CANCELLED, "stopped"}.encode());
	assert_int_equal(s.status, CLOUDLET_E_CANCELLED);
	assert_string_equal(s.message.c_str(), "stopped");

	net::Ack a = net::Ack::decode(net::Ack{UINT64_MAX, 12345}.encode(), kPeer);
	assert_true(a.frames == UINT64_MAX);
	assert_int_equal(a.raw_bytes, 12345);

	net::Final f{10, 20, UINT64_MAX, page(1)};
	net::Final f2 = net::Final::decode(f.encode(), kPeer);
	assert_int_equal(f2.memory_items, 10);
	assert_int_equal(f2.disk_items, 20);
	assert_true(f2.stored_items == UINT64_MAX);
	assert_true(f2.device_state == f.device_state);
	assert_int_equal(net::Final::decode(net::Final{}.encode(), kPeer).device_state.size(), 0);

	net::Ready r = net::Ready::decode(net::Ready{"vm", "uuid"}.encode(), kPeer);
	assert_string_equal(r.name.c_str(), "vm");
	assert_string_equal(r.uuid.c_str(), "uuid");
	net::Go::decode(net::Go{}.encode(), kPeer);

	net::Running run;
	run.name = "vm";
	run.uuid = "uuid";
	run.macs = {"52:54:00:00:00:01", "52:54:00:00:00:02"};
	run.nic_seconds = 1.25;
	run.nic_error = "the guest did not unplug";
	net::Running run2 = net::Running::decode(run.encode(), kPeer);
	assert_string_equal(run2.name.c_str(), "vm");
	assert_string_equal(run2.uuid.c_str(), "uuid");
	assert_true(run2.macs == run.macs);
	assert_true(run2.nic_seconds == 1.25);
	assert_string_equal(run2.nic_error.c_str(), run.nic_error.c_str());
	run.macs.clear();
	run.nic_seconds = 0;
	run.nic_error.clear();
	run2 = net::Running::decode(run.encode(), kPeer);
	assert_int_equal(run2.macs.size(), 0);
	assert_true(run2.nic_seconds == 0); // a whole number of seconds arrives as 0.0 or 0: both are numbers
	assert_true(run2.nic_error.empty());
	assert_true(net::Running::decode(bytes("{\"name\":\"a\",\"uuid\":\"b\",\"macs\":[],\"nic_seconds\":2}"), kPeer)
	                .nic_seconds == 2);
	// Fields a later version adds are ignored.
	assert_string_equal(net::Ready::decode(bytes("{\"name\":\"a\",\"uuid\":\"b\",\"new\":[1]}"), kPeer).uuid.c_str(), "b");
}

static void test_greeting_and_binary_decoders_refuse(void **) {
	auto hello = [](const Payload &p) { net::Greeting::decode(p, "HELLO", kPeer); };
	Payload g = net::Greeting{}.encode();
	refused(hello, Payload(g.begin(), g.end() - 1), "HELLO");
	Payload longer = g;
	longer.push_back(0);
	refused(hello, longer, "HELLO");
	Payload magic = g;
	magic[7] = '2';
	refused(hello, magic, "HELLO");
	refused(hello, {}, "HELLO");

	auto ack = [](const Payload &p) { net::Ack::decode(p, kPeer); };
	refused(ack, Payload(15), "ACK");
	refused(ack, Payload(17), "ACK");
	refused(ack, {}, "ACK");

	auto go = [](const Payload &p) { net::Go::decode(p, kPeer); };
	refused(go, Payload(1), "GO");
	refused(go, bytes("{}"), "GO");

	auto fin = [](const Payload &p) { net::Final::decode(p, kPeer); };
	Payload f = net::Final{1, 2, 3, {9, 9}}.encode();
	refused(fin, Payload(f.begin(), f.begin() + 3), "FINAL");        // not even the length
	refused(fin, Payload(f.begin(), f.begin() + 20), "FINAL");       // the JSON cut
	Payload huge = f;
	le::put32(huge.data(), 0xffffffffu);                             // a length beyond the payload
	refused(fin, huge, "FINAL");
	Payload shorter = f;
	le::put32(shorter.data(), le::get32(f.data()) - 1);              // the JSON's last byte taken as device state
	refused(fin, shorter, "FINAL");
	auto final_json = [](const std::string &j) {
		Payload p(4);
		le::put32(p.data(), static_cast<uint32_t>(j.size()));
		p.insert(p.end(), j.begin(), j.end());
		return p;
	};
	assert_int_equal(net::Final::decode(final_json("{\"memory_items\":0,\"disk_items\":0,\"stored_items\":0}"), kPeer)
	                     .device_state.size(),
	                 0);
	refused(fin, final_json("{\"memory_items\":0,\"disk_items\":0}"), "FINAL");
	refused(fin, final_json("{\"memory_items\":-1,\"disk_items\":0,\"stored_items\":0}"), "FINAL");
	refused(fin, final_json("{\"memory_items\":\"1\",\"disk_items\":0,\"stored_items\":0}"), "FINAL");
	refused(fin, final_json("{\"memory_items\":1.5,\"disk_items\":0,\"stored_items\":0}"), "FINAL");
	refused(fin, final_json(""), "FINAL");
}

static void test_json_decoders_refuse(void **) {
	auto offer = [](const Payload &p) { net::Offer::decode(p, kPeer); };
	refused(offer, {}, "OFFER");
	refused(offer, bytes("{\"name\":\"a\""), "OFFER");                         // truncated
	refused(offer, bytes("{\"name\":\"a\",\"header\":\"h\"}x"), "OFFER");      // trailing bytes
	refused(offer, bytes("{\"name\":\"a\",\"header\":\"h\"} {}"), "OFFER");    // two objects
	Payload nul = bytes("{\"name\":\"a\",\"header\":\"h\"}");
	nul.push_back(0);
	refused(offer, nul, "OFFER");
	refused(offer, bytes("[\"a\",\"h\"]"), "OFFER");                           // not an object
	refused(offer, bytes("{\"header\":\"h\"}"), "OFFER");                      // no name
	refused(offer, bytes("{\"name\":\"a\"}"), "OFFER");                        // no header
	refused(offer, bytes("{\"name\":5,\"header\":\"h\"}"), "OFFER");
	refused(offer, bytes("{\"name\":null,\"header\":\"h\"}"), "OFFER");
	refused(offer, bytes("{\"name\":\"a\\u0000b\",\"header\":\"h\"}"), "OFFER"); // a NUL inside a name

	auto accept = [](const Payload &p) { net::Accept::decode(p, kPeer); };
	refused(accept, {}, "ACCEPT");
	refused(accept, bytes("[]"), "ACCEPT");
	const std::string sid = "\"session\":\"0123456789abcdef0123456789abcdef\"";
	assert_true(net::Accept::decode(bytes("{" + sid + ",\"resume_seconds\":5}"), kPeer).resumable());
	refused(accept, bytes("{" + sid + "}"), "ACCEPT");                                  // no window
	refused(accept, bytes("{" + sid + ",\"resume_seconds\":-1}"), "ACCEPT");
	refused(accept, bytes("{" + sid + ",\"resume_seconds\":1e9}"), "ACCEPT");         // more than a day
	refused(accept, bytes("{\"session\":\"0123\",\"resume_seconds\":5}"), "ACCEPT"); // not 32 hex digits
	refused(accept, bytes("{\"session\":\"0123456789ABCDEF0123456789ABCDEF\",\"resume_seconds\":5}"), "ACCEPT");
	auto resume = [](const Payload &p) { net::Resume::decode(p, kPeer); };
	refused(resume, bytes("{" + sid + "}"), "RESUME");                                  // no acked
	refused(resume, bytes("{" + sid + ",\"acked\":-1}"), "RESUME");
	refused(resume, bytes("{\"acked\":1}"), "RESUME");
	refused(resume, bytes("{\"session\":\"zz\",\"acked\":1}"), "RESUME");
	auto resumed = [](const Payload &p) { net::Resumed::decode(p, kPeer); };
	refused(resumed, bytes("{}"), "RESUMED");
	refused(resumed, bytes("{\"applied\":\"1\"}"), "RESUMED");

	auto ready = [](const Payload &p) { net::Ready::decode(p, kPeer); };
	refused(ready, bytes("{\"name\":\"a\"}"), "READY");
	refused(ready, bytes("{\"name\":\"a\",\"uuid\":1}"), "READY");

	auto running = [](const Payload &p) { net::Running::decode(p, kPeer); };
	const std::string ok = "\"name\":\"a\",\"uuid\":\"b\"";
	assert_int_equal(net::Running::decode(bytes("{" + ok + ",\"macs\":[],\"nic_seconds\":0.1}"), kPeer).macs.size(), 0);
	refused(running, bytes("{" + ok + ",\"nic_seconds\":0.1}"), "RUNNING");                 // no macs
	refused(running, bytes("{" + ok + ",\"macs\":\"m\",\"nic_seconds\":0.1}"), "RUNNING");
	refused(running, bytes("{" + ok + ",\"macs\":[1],\"nic_seconds\":0.1}"), "RUNNING");
	refused(running, bytes("{" + ok + ",\"macs\":[]}"), "RUNNING");                         // no nic_seconds
	refused(running, bytes("{" + ok + ",\"macs\":[],\"nic_seconds\":-1}"), "RUNNING");
	refused(running, bytes("{" + ok + ",\"macs\":[],\"nic_seconds\":\"1\"}"), "RUNNING");
	refused(running, bytes("{" + ok + ",\"macs\":[],\"nic_seconds\":NaN}"), "RUNNING");
	refused(running, bytes("{" + ok + ",\"macs\":[],\"nic_seconds\":0,\"nic_error\":3}"), "RUNNING");
	refused(running, bytes("{\"uuid\":\"b\",\"macs\":[],\"nic_seconds\":0}"), "RUNNING");
}

static void test_stop_decodes_whatever_came(void **) {
	// REFUSE and ABORT end the session whatever they hold: the peer's reason
	// where it gave one, and always an error status.
	net::Stop s = net::Stop::decode(bytes("not json"));
	assert_int_equal(s.status, CLOUDLET_E_IO);
	assert_string_equal(s.message.c_str(), "(no reason given)");
	s = net::Stop::decode({});
	assert_int_equal(s.status, CLOUDLET_E_IO);
	s = net::Stop::decode(bytes("{\"status\":0,\"message\":\"fine\"}"));
	assert_int_equal(s.status, CLOUDLET_E_IO); // not an error: still the end
	assert_string_equal(s.message.c_str(), "fine");
	assert_int_equal(net::Stop::decode(bytes("{\"status\":-100}")).status, CLOUDLET_E_IO);
	assert_int_equal(net::Stop::decode(bytes("{\"status\":-99}")).status, CLOUDLET_E_INTERNAL);
	assert_int_equal(net::Stop::decode(bytes("{\"status\":-4294967298}")).status, CLOUDLET_E_IO);
	assert_int_equal(net::Stop::decode(bytes("{\"status\":\"-8\"}")).status, CLOUDLET_E_IO);
	s = net::Stop::decode(bytes("{\"status\":-8,\"message\":null}"));
	assert_int_equal(s.status, CLOUDLET_E_CORRUPT);
	assert_string_equal(s.message.c_str(), "(no reason given)");
}

// --- tcp -------------------------------------------------------------------------

static void test_tcp_addresses(void **) {
	net::HostPort hp = net::parse_destination("[::1]:7000");
	assert_string_equal(hp.host.c_str(), "::1");
	assert_string_equal(hp.port.c_str(), "7000");
	hp = net::parse_destination("192.0.2.1:22");
	assert_string_equal(hp.host.c_str(), "192.0.2.1");
	assert_string_equal(hp.port.c_str(), "22");
	hp = net::parse_destination("cloudlet-b.example:7002");
	assert_string_equal(hp.host.c_str(), "cloudlet-b.example");
	assert_string_equal(hp.port.c_str(), "7002");
	hp = net::parse_destination("fe80::1:7000"); // unbracketed IPv6: the last ':' is the port's
	assert_string_equal(hp.host.c_str(), "fe80::1");
	std::string msg;
	for (const char *bad : {"7000", ":7000", "host:", ""}) {
		assert_int_equal(status_of([&] { net::parse_destination(bad); }, &msg), CLOUDLET_E_INVALID_ARG);
		assert_non_null(strstr(msg.c_str(), (std::string("'") + bad + "' is not HOST:PORT").c_str()));
	}
	hp = net::parse_listen_address(":7000");
	assert_true(hp.host.empty());
	assert_string_equal(hp.port.c_str(), "7000");
	hp = net::parse_listen_address("[::]:0");
	assert_string_equal(hp.host.c_str(), "::");
	assert_string_equal(hp.port.c_str(), "0");
	for (const char *bad : {"7000", "0.0.0.0:", ""}) {
		assert_int_equal(status_of([&] { net::parse_listen_address(bad); }, &msg), CLOUDLET_E_INVALID_ARG);
		assert_non_null(strstr(msg.c_str(), "is not ADDR:PORT"));
	}
}

static void test_tcp_connect_listen(void **) {
	net::TcpListener l("127.0.0.1:0");
	assert_true(l.port() > 0);
	std::string dest = "127.0.0.1:" + std::to_string(l.port());
	UniqueFd out = net::connect_tcp(dest);
	Progress progress;
	net::TcpConnection in = l.accept(progress);
	assert_true(bool(in.fd));
	assert_int_equal(in.peer.rfind("127.0.0.1:", 0), 0);
	for (int fd : {out.get(), in.fd.get()}) {
		int v = 0;
		socklen_t n = sizeof v;
		assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &n), 0);
		assert_int_not_equal(v, 0);
		assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	}
	assert_int_equal(write(out.get(), "x", 1), 1);
	char c = 0;
	assert_int_equal(read(in.fd.get(), &c, 1), 1);
	assert_int_equal(c, 'x');

	// IPv6 loopback, where this machine has it.
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	sockaddr_in6 a6{};
	a6.sin6_family = AF_INET6;
	a6.sin6_addr = in6addr_loopback;
	bool v6 = probe >= 0 && bind(probe, reinterpret_cast<sockaddr *>(&a6), sizeof a6) == 0;
	if (probe >= 0)
		close(probe);
	if (v6) {
		net::TcpListener l6("[::1]:0");
		UniqueFd o6 = net::connect_tcp("[::1]:" + std::to_string(l6.port()));
		assert_int_equal(l6.accept(progress).peer.rfind("::1:", 0), 0);
	} else {
		print_message("# no IPv6 loopback here: [::1] not tried\n");
	}
}

static void test_tcp_errors(void **) {
	std::string msg;
	// A port nobody listens on: the listener's, closed again.
	unsigned port;
	{
		net::TcpListener l("127.0.0.1:0");
		port = l.port();
	}
	std::string dest = "127.0.0.1:" + std::to_string(port);
	assert_int_equal(status_of([&] { net::connect_tcp(dest); }, &msg), CLOUDLET_E_IO);
	assert_non_null(strstr(msg.c_str(), ("cannot connect to " + dest).c_str()));
	// An unknown service name fails to resolve without asking a DNS server.
	assert_int_equal(status_of([&] { net::connect_tcp("127.0.0.1:no-such-service"); }, &msg), CLOUDLET_E_IO);
	assert_non_null(strstr(msg.c_str(), "cannot resolve 127.0.0.1:no-such-service"));
	assert_int_equal(status_of([&] { net::TcpListener("127.0.0.1:no-such-service"); }, &msg), CLOUDLET_E_INVALID_ARG);
	assert_non_null(strstr(msg.c_str(), "cannot resolve 127.0.0.1:no-such-service"));
	net::TcpListener busy("127.0.0.1:0");
	std::string taken = "127.0.0.1:" + std::to_string(busy.port());
	assert_int_not_equal(status_of([&] { net::TcpListener l(taken); }, &msg), 0);
	assert_non_null(strstr(msg.c_str(), ("cannot listen on " + taken).c_str()));
	// accept() waits until cancelled.
	cloudlet_cancel cancel;
	Progress progress(nullptr, nullptr, &cancel);
	std::thread t([&] {
		std::this_thread::sleep_for(std::chrono::milliseconds(300));
		cancel.triggered = 1;
	});
	assert_int_equal(status_of([&] { busy.accept(progress); }), CLOUDLET_E_CANCELLED);
	t.join();
}

// --- link rate -------------------------------------------------------------------

static void test_link_rate(void **) {
	engine::LinkRate r;
	Clock::time_point t0 = Clock::now();
	assert_true(r.link_bps() == 0);
	assert_int_equal(status_of([&] { r.acked(t0); }), CLOUDLET_E_CORRUPT); // nothing in flight
	// Four frames of 100 kB (200 kB before compression) go out at once.
	for (int i = 0; i < 4; i++)
		r.sent(100000, 200000, t0);
	assert_int_equal(r.frames_sent(), 4);
	assert_true(r.first_send() == t0);
	// 0.2 s: shorter than a window, nothing measured yet.
	assert_false(r.acked(at(t0, 0.2)));
	assert_true(r.link_bps() == 0);
	// 0.5 s: two frames in half a second, two more in flight: 400 kB/s on
	// the wire, 800 kB/s before compression.
	assert_true(r.acked(at(t0, 0.5)));
	assert_float_equal(r.link_bps(), 400000, 1);
	assert_float_equal(r.window_raw_bps(), 800000, 1);
	assert_float_equal(r.move_bps(), 800000, 1);
	// 0.75 s: a window starts at 0.5, too short.
	assert_false(r.acked(at(t0, 0.75)));
	// 1.0 s: the last frame in flight: the link went idle, an ACK's pace
	// says nothing, the rate stays and the window starts afresh.
	assert_false(r.acked(at(t0, 1.0)));
	assert_float_equal(r.link_bps(), 400000, 1);
	assert_int_equal(r.frames_acked(), 4);
	assert_true(r.last_ack() == at(t0, 1.0));
	// Three frames of 50 kB (raw 150 kB) at 1.0 s; the first two ACKs take
	// a second: 100 kB/s on the wire, smoothed with the 400 kB/s before:
	// 250 kB/s; before compression 300 kB/s, smoothed with 800: 550 kB/s.
	// The bytes acknowledged before the idle ACK are not counted again.
	for (int i = 0; i < 3; i++)
		r.sent(50000, 150000, at(t0, 1.0));
	assert_true(r.first_send() == t0);
	assert_false(r.acked(at(t0, 1.4)));
	assert_true(r.acked(at(t0, 2.0)));
	assert_float_equal(r.link_bps(), 250000, 1);
	assert_float_equal(r.window_raw_bps(), 300000, 1);
	assert_float_equal(r.move_bps(), 550000, 1);
	assert_false(r.acked(at(t0, 3.0))); // the last one: idle again, no window
	assert_float_equal(r.link_bps(), 250000, 1);
	assert_int_equal(status_of([&] { r.acked(at(t0, 3.1)); }), CLOUDLET_E_CORRUPT);
	// A resume: of four frames in flight the destination had applied two;
	// they count as acknowledged without a measurement, and the next window
	// starts at the resume (the reconnect's time is not the link's).
	for (int i = 0; i < 4; i++)
		r.sent(100000, 100000, at(t0, 4.0));
	assert_int_equal(status_of([&] { r.resumed(12, at(t0, 9.0)); }), CLOUDLET_E_INTERNAL); // past the frames sent
	assert_int_equal(status_of([&] { r.resumed(6, at(t0, 9.0)); }), CLOUDLET_E_INTERNAL);  // before those acknowledged
	r.resumed(9, at(t0, 9.0));
	assert_int_equal(r.frames_acked(), 9);
	assert_float_equal(r.link_bps(), 250000, 1);
	assert_false(r.acked(at(t0, 9.25)));
	assert_false(r.acked(at(t0, 9.5))); // the last in flight: idle again
	assert_int_equal(r.frames_acked(), 11);
	assert_int_equal(status_of([&] { r.resumed(10, at(t0, 9.6)); }), CLOUDLET_E_INTERNAL); // before the acked
}

// --- dirty queue -------------------------------------------------------------------

static void test_dirty_queue_newest_wins_in_order(void **) {
	TempDir d;
	engine::DirtyQueue q(d.path, 1 << 20);
	std::vector<uint8_t> a1 = page(1), b1 = page(2), a2 = page(3), c1 = page(4), out(4096);
	q.put(10, a1.data(), 1);
	q.put(20, b1.data(), 2);
	q.put(10, a2.data(), 3); // replaces a1 where it waits
	q.put(30, c1.data(), 4);
	assert_int_equal(q.waiting(), 3);
	assert_int_equal(q.replaced(), 1);
	uint64_t key = 0, version = 0;
	assert_true(q.take(&key, out.data(), &version));
	assert_int_equal(key, 10); // first come, with its newest content
	assert_int_equal(version, 3);
	assert_true(out == a2);
	// Once taken, a chunk queues anew (behind what waits).
	q.put(10, a1.data(), 5);
	assert_true(q.take(&key, out.data(), &version));
	assert_int_equal(key, 20);
	assert_true(out == b1);
	assert_true(q.take(&key, out.data(), &version));
	assert_int_equal(key, 30);
	assert_true(out == c1);
	assert_true(q.take(&key, out.data(), &version));
	assert_int_equal(key, 10);
	assert_int_equal(version, 5);
	assert_true(out == a1);
	assert_int_equal(q.replaced(), 1);
	q.close();
	assert_false(q.take(&key, out.data(), &version)); // closed and empty
	// Slots are reused: many rounds, each chunk intact.
	engine::DirtyQueue r(d.path, 0);
	for (uint32_t round = 0; round < 8; round++) {
		for (uint64_t k = 0; k < 16; k++)
			r.put(k, page(round * 100 + static_cast<uint32_t>(k)).data(), round * 16 + k);
		for (uint64_t k = 0; k < 16; k++) {
			assert_true(r.take(&key, out.data(), &version));
			assert_int_equal(key, k);
			assert_true(out == page(round * 100 + static_cast<uint32_t>(k)));
		}
	}
}

static void test_dirty_queue_bounds(void **) {
	TempDir d;
	// The budget never goes below 16 chunks.
	engine::DirtyQueue q(d.path, 0);
	std::vector<uint8_t> p = page(9), out(4096);
	for (uint64_t k = 0; k < 16; k++)
		q.put(k, p.data(), k);
	q.put(3, p.data(), 99); // replacing one that waits needs no room
	std::atomic<bool> done{false};
	std::thread t([&] {
		q.put(100, p.data(), 100); // the 17th blocks: backpressure
		done = true;
	});
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
	assert_false(done.load());
	uint64_t key, version;
	assert_true(q.take(&key, out.data(), &version)); // room for one
	t.join();
	assert_true(done.load());
	assert_int_equal(q.waiting(), 16);
	// A larger budget lets more wait; a smaller one never goes below 16.
	q.set_budget(20 * 4096);
	for (uint64_t k = 200; k < 204; k++)
		q.put(k, p.data(), k);
	assert_int_equal(q.waiting(), 20);
	q.set_budget(0);
	done = false;
	std::thread t2([&] {
		int st = status_of([&] { q.put(300, p.data(), 300); });
		assert_int_equal(st, CLOUDLET_E_CANCELLED); // abort wakes a blocked put
		done = true;
	});
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
	assert_false(done.load());
	q.abort();
	t2.join();
	assert_true(done.load());
	assert_int_equal(status_of([&] { q.put(301, p.data(), 301); }), CLOUDLET_E_CANCELLED);
	assert_false(q.take(&key, out.data(), &version)); // aborted: nothing more comes out
}

// --- ITEMS batches -----------------------------------------------------------------

static void test_item_batch_round_trip(void **) {
	using chunk::ChunkKind;
	struct Item {
		chunk::ChunkRecord r;
		uint64_t version;
		std::vector<uint8_t> data;
	};
	std::vector<uint8_t> zeros(4096, 0);
	std::vector<Item> items = {
	    {{0, ChunkKind::Zero, 5, 0, 0}, 1, {}},
	    {{0, ChunkKind::BaseMemory, 6, 6, 0}, 2, {}},
	    {{1, ChunkKind::BaseDisk, 7, 7 * 4096, 0}, 3, {}},
	    {{0, ChunkKind::Data, 8, 0, 0}, 4, page(8)},
	    {{2, ChunkKind::DataXor, 9, 0, 0}, 5, zeros},
	    {{0, ChunkKind::Self, 10, 0, 0}, 6, {}},
	    {{0, ChunkKind::ShiftXor, 11, 0, -17}, 7, page(11)},
	    {{0, ChunkKind::Data, 8, 0, 0}, 8, page(80)}, // the same chunk again, newer
	};
	for (chunk::Codec codec : {chunk::Codec::None, chunk::Codec::Zstd, chunk::Codec::Lzma}) {
		engine::ItemBatch b;
		for (const auto &it : items)
			b.add(it.r, it.version, it.data.empty() ? nullptr : it.data.data());
		assert_int_equal(b.items(), items.size());
		uint64_t raw = b.raw_bytes();
		assert_int_equal(raw, items.size() * 32 + 4 * 4096);
		std::vector<uint8_t> frame = b.encode(codec, codec == chunk::Codec::Lzma ? 6 : 3);
		assert_true(b.empty()); // encode() clears
		assert_int_equal(b.raw_bytes(), 0);
		assert_int_equal(frame[0], static_cast<uint8_t>(codec));
		assert_int_equal(le::get32(frame.data() + 4), items.size());
		assert_int_equal(le::get32(frame.data() + 8), raw);
		size_t i = 0;
		uint64_t got = engine::decode_item_batch(frame, 2, [&](const chunk::ChunkRecord &r, uint64_t v, const uint8_t *d) {
			assert_true(i < items.size());
			const Item &want = items[i++];
			assert_int_equal(r.space, want.r.space);
			assert_int_equal(static_cast<int>(r.kind), static_cast<int>(want.r.kind));
			assert_int_equal(r.chunk, want.r.chunk);
			assert_int_equal(r.ref, want.r.ref);
			assert_int_equal(r.shift, want.r.shift);
			assert_int_equal(v, want.version);
			if (want.data.empty())
				assert_null(d);
			else
				assert_memory_equal(d, want.data.data(), 4096);
		});
		assert_int_equal(i, items.size());
		assert_int_equal(got, raw);
	}
	// Random content does not compress: the batch goes out uncompressed.
	engine::ItemBatch b;
	for (uint64_t c = 0; c < 8; c++)
		b.add({0, chunk::ChunkKind::Data, c, 0, 0}, c, page(static_cast<uint32_t>(c)).data());
	std::vector<uint8_t> frame = b.encode(chunk::Codec::Zstd, 3);
	assert_int_equal(frame[0], 0);
	assert_int_equal(frame.size(), 12 + 8 * 32 + 8 * 4096);
}


static void test_item_batch_refused(void **) {
	auto ok = [](const chunk::ChunkRecord &, uint64_t, const uint8_t *) {};
	auto corrupt = [&](const std::vector<uint8_t> &frame, uint8_t spaces) {
		std::string msg;
		int st = status_of([&] { engine::decode_item_batch(frame, spaces, ok); }, &msg);
		if (st != CLOUDLET_E_CORRUPT)
			fail_msg("batch accepted or wrong status %d: %s", st, msg.c_str());
	};
	engine::ItemBatch b;
	b.add({1, chunk::ChunkKind::Data, 1, 0, 0}, 1, page(1).data());
	b.add({0, chunk::ChunkKind::Zero, 2, 0, 0}, 2, nullptr);
	std::vector<uint8_t> good = b.encode(chunk::Codec::None, 0);
	engine::decode_item_batch(good, 1, ok);
	corrupt(good, 0); // space 1 of a VM without disks
	corrupt(std::vector<uint8_t>(good.begin(), good.begin() + 11), 1);
	corrupt(std::vector<uint8_t>(good.begin(), good.end() - 1), 1);
	std::vector<uint8_t> longer = good;
	longer.push_back(0);
	corrupt(longer, 1);
	auto with = [&](size_t at, uint8_t v) {
		std::vector<uint8_t> f = good;
		f[at] = v;
		return f;
	};
	corrupt(with(0, 3), 1);        // unknown codec
	corrupt(with(1, 1), 1);        // reserved byte of the batch header
	corrupt(with(12 + 1, 0), 1);   // kind 0
	corrupt(with(12 + 1, 8), 1);   // kind beyond the last
	corrupt(with(12 + 2, 1), 1);   // a shift on a kind without one
	corrupt(with(12 + 5, 1), 1);   // a reserved byte of the record
	corrupt(with(12 + 32 + 1, 5), 1); // the ZERO item claims a payload it does not have
	std::vector<uint8_t> f = good;
	le::put32(f.data() + 4, 0);
	corrupt(f, 1);                 // no items
	le::put32(f.data() + 4, 65537);
	corrupt(f, 1);                 // too many
	f = good;
	le::put32(f.data() + 8, le::get32(good.data() + 8) + 4096);
	corrupt(f, 1);                 // more bytes than there are
	f = good;
	f[12 + 1] = static_cast<uint8_t>(chunk::ChunkKind::ShiftXor);
	corrupt(f, 1);                 // shift 0
	// A small batch declaring the most bytes a batch may have (65536 items,
	// 16 MiB of chunks) is refused before that much is allocated: stored
	// plainly it must be that long, compressed its frame must declare it.
	for (uint8_t codec : {uint8_t(0), uint8_t(1)}) {
		f = good;
		f[0] = codec;
		le::put32(f.data() + 4, 65536);
		le::put32(f.data() + 8, 65536 * 32 + (16u << 20));
		g_largest_alloc = 0;
		corrupt(f, 1);
		if (g_largest_alloc > (1u << 20))
			fail_msg("codec %d: %zu bytes allocated for a %zu-byte batch", codec, g_largest_alloc.load(), f.size());
	}
}

int main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_messages_encode_as_before),
	    cmocka_unit_test(test_messages_round_trip),
	    cmocka_unit_test(test_greeting_and_binary_decoders_refuse),
	    cmocka_unit_test(test_json_decoders_refuse),
	    cmocka_unit_test(test_stop_decodes_whatever_came),
	    cmocka_unit_test(test_tcp_addresses),
	    cmocka_unit_test(test_tcp_connect_listen),
	    cmocka_unit_test(test_tcp_errors),
	    cmocka_unit_test(test_link_rate),
	    cmocka_unit_test(test_dirty_queue_newest_wins_in_order),
	    cmocka_unit_test(test_dirty_queue_bounds),
	    cmocka_unit_test(test_item_batch_round_trip),
	    cmocka_unit_test(test_item_batch_refused),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
