// The handoff protocol's frame layer (docs/protocols/handoff.md): length-
// prefixed frames with a per-direction sequence number and a truncated
// HMAC-SHA256, the HELLO/CHALLENGE handshake that derives per-session keys
// from the link's secret (the TLS exporter, or the token in plaintext), and
// typed receive with timeouts, over a net/secure_link.h Link. The payloads are net/handoff_messages.h; what is
// sent when is src/ops/handoff* and its engines. This layer knows nothing
// about VMs.
#pragma once

#include "net/secure_link.h"
#include "util/error.h"

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace cloudlet::net {

enum class FrameType : uint8_t {
	Hello = 1,
	Challenge = 2,
	Offer = 3,
	Accept = 4,
	Refuse = 5,
	Items = 6,
	Ack = 7,
	Final = 8,
	Ready = 9,
	Go = 10,
	Running = 11,
	Abort = 12,
	Resume = 13,
	Resumed = 14,
};
const char *frame_type_name(FrameType t);

// 2: the connection runs over TLS 1.3 (net/secure_link.h) unless the
// operator chose plaintext; the frame keys come from the link's secret.
constexpr uint32_t kHandoffVersion = 2;
constexpr size_t kMaxFramePayload = (16u << 20) + (64u << 10);
constexpr size_t kMaxGreetingPayload = 4096; // a side's first frame (HELLO, CHALLENGE or REFUSE)
// What a frame adds to its payload on the wire: the header (length, type,
// flags, reserved, sequence number) before it and the truncated MAC after.
constexpr size_t kFrameHeaderBytes = 16, kFrameMacBytes = 16;
constexpr size_t kFrameOverhead = kFrameHeaderBytes + kFrameMacBytes;
constexpr size_t kMinTokenBytes = 32;

// A send or receive that failed because the connection is gone (closed,
// reset, cut, silent past its timeout), not because the peer misbehaved:
// what a resume mends (docs/protocols/handoff.md "Resume"), and a state in
// which there is nobody left to send an ABORT to.
inline bool connection_lost(const Error &e) {
	return e.status() == CLOUDLET_E_IO || e.status() == CLOUDLET_E_TIMEOUT;
}

struct Frame {
	FrameType type = FrameType::Abort;
	std::vector<uint8_t> payload;
	std::string text() const { return std::string(payload.begin(), payload.end()); }
};

// One side of a handoff connection over a link (not owned: TLS or the
// socket, net/secure_link.h). One thread may receive while others send:
// sends are serialised (a frame goes out whole), receives are not.
class FrameChannel {
public:
	FrameChannel(Link &link, std::string peer);
	~FrameChannel();
	FrameChannel(const FrameChannel &) = delete;
	FrameChannel &operator=(const FrameChannel &) = delete;

	// The source's side: HELLO, then CHALLENGE. A destination that holds
	// another token closes the connection: CLOUDLET_E_PERMISSION saying so;
	// one that speaks another version answers REFUSE: CLOUDLET_E_UNSUPPORTED
	// with its reason. `version` is for tests that play an older peer.
	void client_handshake(int timeout_ms, uint32_t version = kHandoffVersion);
	// The destination's side: HELLO (a wrong token: CLOUDLET_E_PERMISSION,
	// nothing sent back; another version: REFUSE, then
	// CLOUDLET_E_UNSUPPORTED), then CHALLENGE.
	void server_handshake(int timeout_ms);

	void send(FrameType t, const uint8_t *payload, size_t n);
	void send(FrameType t, const std::string &payload) {
		send(t, reinterpret_cast<const uint8_t *>(payload.data()), payload.size());
	}
	void send(FrameType t, const std::vector<uint8_t> &payload) { send(t, payload.data(), payload.size()); }
	// For a thread that stops the session (a cancel, a failure elsewhere):
	// sends the frame if no other send holds the connection for longer than
	// `wait_ms` (a frame stuck on a slow link), else nothing. Never throws;
	// false if it was not sent.
	bool try_send(FrameType t, const std::vector<uint8_t> &payload, int wait_ms) noexcept;
	// The next frame, checked (length, reserved bytes, sequence, MAC).
	// CLOUDLET_E_CORRUPT for a bad frame, CLOUDLET_E_IO when the peer closed
	// or the socket failed, CLOUDLET_E_TIMEOUT after `timeout_ms` without
	// a complete frame (-1: wait forever).
	Frame receive(int timeout_ms);
	// receive() for one expected type. ABORT and REFUSE become errors with
	// the peer's status and message; another type is CLOUDLET_E_CORRUPT.
	Frame expect(FrameType t, int timeout_ms);
	// For a receiver that takes several types: an ABORT or REFUSE frame
	// becomes the error it carries (the peer's status and message); any
	// other frame returns.
	void fail_on_peer_stop(const Frame &f) const;

	// Ends both directions of the socket: a thread blocked in send() or
	// receive() on this channel returns with an error.
	void shutdown();

	// Bytes on the socket (TLS records included).
	uint64_t bytes_sent() const { return link_.wire_bytes_sent(); }
	uint64_t bytes_received() const { return link_.wire_bytes_received(); }
	const std::string &peer() const { return peer_; }

private:
	void send_locked(FrameType t, const uint8_t *payload, size_t n); // with send_mu_ held
	void read_exact(uint8_t *p, size_t n, int timeout_ms);
	void write_all(const uint8_t *p, size_t n);
	std::timed_mutex send_mu_;
	Link &link_;
	std::string peer_, secret_;
	std::vector<uint8_t> send_key_, recv_key_;
	uint64_t send_seq_ = 0, recv_seq_ = 0;
};

} // namespace cloudlet::net
