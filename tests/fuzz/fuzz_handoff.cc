// Fuzzes what a handoff peer reads from the network before trusting it:
// every message decoder of net/handoff_messages.h (the frame layer's MAC
// keeps fuzzed bytes from reaching them through a socket, so each is fed
// the bytes directly), ITEMS batches (codec, counts, records, payload), and
// the frame layer itself (length, type, sequence, MAC) over a socket; an
// OFFER's launch header goes on to the header parser. Any
// input gives a message / items / frames or a clean error (CLOUDLET_E_CORRUPT,
// _IO, _PERMISSION, _TIMEOUT), with bounded memory; a message that decodes
// encodes and decodes again to the same fields.
#include "engine/handoff_items.h"
#include "format/overlay_file.h"
#include "net/handoff_messages.h"
#include "net/handoff_wire.h"
#include "net/secure_link.h"
#include "util/error.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace {

using namespace cloudlet;

bool allowed(const Error &e) {
	cloudlet_status s = e.status();
	return s == CLOUDLET_E_CORRUPT || s == CLOUDLET_E_IO || s == CLOUDLET_E_PERMISSION || s == CLOUDLET_E_TIMEOUT;
}

void check(bool ok) {
	if (!ok)
		__builtin_trap();
}

// Runs one decoder; a failure must be a clean error.
void decoding(const std::function<void()> &f) {
	try {
		f();
	} catch (const Error &e) {
		check(allowed(e));
	}
}

void messages(const net::Payload &p) {
	const std::string peer = "fuzz";
	decoding([&] {
		net::Greeting g = net::Greeting::decode(p, "HELLO", peer);
		check(g.encode() == p);
	});
	decoding([&] {
		net::Offer o = net::Offer::decode(p, peer);
		net::Offer again = net::Offer::decode(o.encode(), peer);
		check(again.name == o.name && again.header == o.header);
		try { // what the destination reads next: the launch header
			format::parse_header(o.header, "fuzz OFFER");
		} catch (const Error &e) {
			check(e.status() == CLOUDLET_E_CORRUPT || e.status() == CLOUDLET_E_UNSUPPORTED);
		}
	});
	decoding([&] { net::Accept::decode(p, peer); });
	// REFUSE and ABORT: never an error of their own, always an error status.
	net::Stop s = net::Stop::decode(p);
	check(s.status < 0 && s.status >= CLOUDLET_E_INTERNAL);
	decoding([&] {
		net::Ack a = net::Ack::decode(p, peer);
		check(a.encode() == p);
	});
	decoding([&] {
		net::Final f = net::Final::decode(p, peer);
		net::Final again = net::Final::decode(f.encode(), peer);
		check(again.memory_items == f.memory_items && again.disk_items == f.disk_items &&
		      again.stored_items == f.stored_items && again.device_state == f.device_state);
	});
	decoding([&] {
		net::Ready r = net::Ready::decode(p, peer);
		net::Ready again = net::Ready::decode(r.encode(), peer);
		check(again.name == r.name && again.uuid == r.uuid);
	});
	decoding([&] { net::Go::decode(p, peer); });
	decoding([&] {
		net::Running r = net::Running::decode(p, peer);
		net::Running again = net::Running::decode(r.encode(), peer);
		check(again.name == r.name && again.uuid == r.uuid && again.macs == r.macs && again.nic_error == r.nic_error);
	});
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	std::vector<uint8_t> frame(data, data + size);
	// 1. The bytes as each message's payload.
	messages(frame);
	// 2. The bytes as an ITEMS batch payload.
	decoding([&] {
		uint64_t sum = 0;
		engine::decode_item_batch(frame, 2, [&](const chunk::ChunkRecord &r, uint64_t v, const uint8_t *d) {
			sum += r.chunk + v + (d ? d[4095] : 0);
		});
	});
	// 3. The bytes as what arrives on a connection (small inputs: a socket
	// pair's buffer holds them without a reader).
	if (size > 100000)
		return 0;
	int fd[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) != 0)
		return 0;
	if (size && write(fd[0], data, size) != static_cast<ssize_t>(size)) {
		close(fd[0]);
		close(fd[1]);
		return 0;
	}
	shutdown(fd[0], SHUT_WR);
	decoding([&] {
		// The frame layer over a plaintext link (the bytes a peer sends
		// inside TLS reach it the same way once TLS is done).
		net::SecurityConfig sc;
		sc.mode = net::Security::PlaintextUnsafe;
		sc.token = std::string(40, 't');
		auto link = net::LinkSetup(sc, net::LinkSetup::Role::Server).open(fd[1], "fuzz", "", 1000);
		net::FrameChannel ch(*link, "fuzz");
		for (int i = 0; i < 64; i++)
			ch.receive(1000); // the peer has shut down: EOF, never a wait
	});
	close(fd[0]);
	close(fd[1]);
	return 0;
}
