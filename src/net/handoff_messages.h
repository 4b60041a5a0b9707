// The handoff protocol's messages (docs/protocols/handoff.md "Messages"): one
// struct per payload, encode() for the side that sends it, decode() for the
// side that receives it. A decoder trusts nothing of the peer: it checks every
// length, type and field, and a bad payload is CLOUDLET_E_CORRUPT naming the
// message and the peer. Decoders ignore JSON fields they do not know, so a
// later version may add some. ITEMS batches are engine::ItemBatch
// (engine/handoff_items.h); the frames around every payload are
// net/handoff_wire.h.
#pragma once

#include "net/handoff_wire.h"
#include "util/error.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet::net {

using Payload = std::vector<uint8_t>;

// HELLO (source) and CHALLENGE (destination): the magic CLTHOFF1, the
// sender's protocol version, its nonce. `what` names the frame in errors.
struct Greeting {
	static constexpr size_t kNonceBytes = 32, kBytes = 8 + 4 + kNonceBytes;
	uint32_t version = kHandoffVersion;
	std::array<uint8_t, kNonceBytes> nonce{};
	Payload encode() const;
	static Greeting decode(const Payload &p, const char *what, const std::string &peer);
};

// OFFER: the source domain's name and the launch header that describes the
// VM (format::header_json: disks, memory layout, domain XML).
struct Offer {
	static constexpr FrameType kType = FrameType::Offer;
	std::string name, header;
	Payload encode() const;
	static Offer decode(const Payload &p, const std::string &peer);
};

// ACCEPT: the destination takes the VM. `session` (32 hex digits, random)
// names this handoff for a RESUME after a cut, and `resume_seconds` is how
// long the destination waits for one; a destination that does not resume
// sends neither (docs/protocols/handoff.md "Resume").
struct Accept {
	static constexpr FrameType kType = FrameType::Accept;
	static constexpr size_t kSessionChars = 32;
	std::string session;
	double resume_seconds = 0;
	bool resumable() const { return !session.empty() && resume_seconds > 0; }
	Payload encode() const;
	static Accept decode(const Payload &p, const std::string &peer);
};

// REFUSE and ABORT: why the peer stops. decode() never fails: whatever
// the peer sent, the session ends with the peer's reason where it gave one,
// and a status that is not an error becomes CLOUDLET_E_IO.
struct Stop {
	int status = CLOUDLET_E_IO;
	std::string message = "(no reason given)";
	Payload encode() const;
	static Stop decode(const Payload &p);
};

// ACK, one per ITEMS frame applied: ITEMS frames applied so far, and their
// bytes before compression.
struct Ack {
	static constexpr FrameType kType = FrameType::Ack;
	static constexpr size_t kBytes = 16;
	uint64_t frames = 0, raw_bytes = 0;
	Payload encode() const;
	static Ack decode(const Payload &p, const std::string &peer);
};

// FINAL: u32 length of a JSON object with the source's item counts, the
// JSON, then the device state to the end of the payload.
struct Final {
	static constexpr FrameType kType = FrameType::Final;
	uint64_t memory_items = 0, disk_items = 0, stored_items = 0;
	std::vector<uint8_t> device_state;
	Payload encode() const;
	static Final decode(const Payload &p, const std::string &peer);
};

// RESUME: a source's first frame on a new connection after a cut: the
// session ACCEPT named, and the ITEMS frames it has seen acknowledged.
struct Resume {
	static constexpr FrameType kType = FrameType::Resume;
	std::string session;
	uint64_t acked = 0;
	Payload encode() const;
	static Resume decode(const Payload &p, const std::string &peer);
};

// RESUMED: the destination's answer: the ITEMS frames it applied (never
// fewer than RESUME's `acked`); the source sends on from the next one.
struct Resumed {
	static constexpr FrameType kType = FrameType::Resumed;
	uint64_t applied = 0;
	Payload encode() const;
	static Resumed decode(const Payload &p, const std::string &peer);
};

// A fresh random session name for ACCEPT: kSessionChars hex digits.
std::string new_session_id();

// READY: the destination restored the VM, paused, under this name and UUID.
struct Ready {
	static constexpr FrameType kType = FrameType::Ready;
	std::string name, uuid;
	Payload encode() const;
	static Ready decode(const Payload &p, const std::string &peer);
};

// GO: empty.
struct Go {
	static constexpr FrameType kType = FrameType::Go;
	Payload encode() const { return {}; }
	static Go decode(const Payload &p, const std::string &peer);
};

// RUNNING: the VM runs at the destination; its MACs, how long the NIC swap
// took there (with the VM running: not downtime), and why the swap did not
// complete if it did not ("" if it did).
struct Running {
	static constexpr FrameType kType = FrameType::Running;
	std::string name, uuid;
	std::vector<std::string> macs;
	double nic_seconds = 0;
	std::string nic_error;
	Payload encode() const;
	static Running decode(const Payload &p, const std::string &peer);
};

// A message of a type that has its own frame type, sent / received and
// decoded (FrameChannel::expect: ABORT and REFUSE become their errors).
template <class M> void send_message(FrameChannel &ch, const M &m) { ch.send(M::kType, m.encode()); }
template <class M> M expect_message(FrameChannel &ch, int timeout_ms) {
	return M::decode(ch.expect(M::kType, timeout_ms).payload, ch.peer());
}

} // namespace cloudlet::net
