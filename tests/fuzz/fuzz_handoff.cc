// Fuzzes what a handoff destination reads from the network before trusting
// it: the frame layer (length, type, sequence, MAC) over a socket, and
// ITEMS batches (codec, counts, records, payload). Any input gives frames /
// items or a clean error (CLOUDLET_E_CORRUPT, _IO, _PERMISSION, _TIMEOUT),
// with bounded memory.
#include "engine/handoff_items.h"
#include "net/handoff_wire.h"
#include "util/error.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	using namespace cloudlet;
	auto allowed = [](const Error &e) {
		cloudlet_status s = e.status();
		return s == CLOUDLET_E_CORRUPT || s == CLOUDLET_E_IO || s == CLOUDLET_E_PERMISSION || s == CLOUDLET_E_TIMEOUT;
	};
	// 1. The bytes as an ITEMS batch payload.
	std::vector<uint8_t> frame(data, data + size);
	try {
		uint64_t sum = 0;
		engine::decode_item_batch(frame, 2, [&](const chunk::ChunkRecord &r, uint64_t v, const uint8_t *d) {
			sum += r.chunk + v + (d ? d[4095] : 0);
		});
	} catch (const Error &e) {
		if (!allowed(e))
			__builtin_trap();
	}
	// 2. The bytes as what arrives on a connection (small inputs: a socket
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
	try {
		net::FrameChannel ch(fd[1], "fuzz", std::string(40, 't'));
		for (int i = 0; i < 64; i++)
			ch.receive(1000); // the peer has shut down: EOF, never a wait
	} catch (const Error &e) {
		if (!allowed(e))
			__builtin_trap();
	}
	close(fd[0]);
	close(fd[1]);
	return 0;
}
