#include "net/handoff_wire.h"

#include "net/handoff_messages.h"
#include "util/error.h"
#include "util/le_bytes.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

namespace cloudlet::net {

namespace {

constexpr size_t kHeader = kFrameHeaderBytes, kMacBytes = kFrameMacBytes, kNonce = Greeting::kNonceBytes;

using le::get32;
using le::get64;
using le::put32;
using le::put64;

std::vector<uint8_t> hmac(const std::string &key, const std::vector<uint8_t> &msg) {
	std::vector<uint8_t> out(32);
	unsigned len = 0;
	if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), msg.data(), msg.size(), out.data(), &len) ||
	    len != 32)
		fail(CLOUDLET_E_INTERNAL, "HMAC-SHA256 failed");
	return out;
}

std::vector<uint8_t> derive(const std::string &token, const std::string &label, const uint8_t *ns, const uint8_t *nd) {
	std::vector<uint8_t> msg(label.begin(), label.end());
	if (ns) {
		msg.insert(msg.end(), ns, ns + kNonce);
		msg.insert(msg.end(), nd, nd + kNonce);
	}
	return hmac(token, msg);
}

// HMAC-SHA256 over (header without length, payload), first 16 bytes.
void frame_mac(const std::vector<uint8_t> &key, const uint8_t *head, const uint8_t *payload, size_t n, uint8_t *out) {
	std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr), EVP_MAC_free);
	std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(mac ? EVP_MAC_CTX_new(mac.get()) : nullptr,
	                                                              EVP_MAC_CTX_free);
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
	uint8_t full[32];
	size_t len = 0;
	if (!ctx || !EVP_MAC_init(ctx.get(), key.data(), key.size(), params) || !EVP_MAC_update(ctx.get(), head + 4, kHeader - 4) ||
	    (n && !EVP_MAC_update(ctx.get(), payload, n)) || !EVP_MAC_final(ctx.get(), full, &len, sizeof full) || len != 32)
		fail(CLOUDLET_E_INTERNAL, "HMAC-SHA256 failed");
	memcpy(out, full, kMacBytes);
}

} // namespace

const char *frame_type_name(FrameType t) {
	switch (t) {
	case FrameType::Hello: return "HELLO";
	case FrameType::Challenge: return "CHALLENGE";
	case FrameType::Offer: return "OFFER";
	case FrameType::Accept: return "ACCEPT";
	case FrameType::Refuse: return "REFUSE";
	case FrameType::Items: return "ITEMS";
	case FrameType::Ack: return "ACK";
	case FrameType::Final: return "FINAL";
	case FrameType::Ready: return "READY";
	case FrameType::Go: return "GO";
	case FrameType::Running: return "RUNNING";
	case FrameType::Abort: return "ABORT";
	case FrameType::Resume: return "RESUME";
	case FrameType::Resumed: return "RESUMED";
	}
	return "unknown";
}

FrameChannel::FrameChannel(Link &link, std::string peer)
    : link_(link), peer_(std::move(peer)), secret_(link.frame_secret()) {
	if (secret_.size() < kMinTokenBytes)
		fail(CLOUDLET_E_INVALID_ARG, "a handoff token needs at least 32 bytes");
	send_key_ = recv_key_ = derive(secret_, "cloudlet-handoff-v1 hello", nullptr, nullptr);
}

FrameChannel::~FrameChannel() {
	OPENSSL_cleanse(secret_.data(), secret_.size());
	OPENSSL_cleanse(send_key_.data(), send_key_.size());
	OPENSSL_cleanse(recv_key_.data(), recv_key_.size());
}

void FrameChannel::shutdown() { link_.shutdown(); }

void FrameChannel::write_all(const uint8_t *p, size_t n) { link_.write_all(p, n); }

void FrameChannel::read_exact(uint8_t *p, size_t n, int timeout_ms) {
	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	while (n) {
		int left = -1;
		if (timeout_ms >= 0) {
			auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
			if (ms.count() <= 0)
				fail(CLOUDLET_E_TIMEOUT, "nothing from " + peer_ + " for " + std::to_string(timeout_ms) + " ms");
			left = static_cast<int>(ms.count());
		}
		size_t k = link_.read_some(p, n, left);
		p += k;
		n -= k;
	}
}

bool FrameChannel::try_send(FrameType t, const std::vector<uint8_t> &payload, int wait_ms) noexcept {
	try {
		std::unique_lock<std::timed_mutex> lock(send_mu_, std::chrono::milliseconds(wait_ms));
		if (!lock)
			return false;
		send_locked(t, payload.data(), payload.size());
		return true;
	} catch (...) {
		return false;
	}
}

void FrameChannel::send(FrameType t, const uint8_t *payload, size_t n) {
	std::lock_guard<std::timed_mutex> lock(send_mu_);
	send_locked(t, payload, n);
}

void FrameChannel::send_locked(FrameType t, const uint8_t *payload, size_t n) {
	if (n > kMaxFramePayload)
		fail(CLOUDLET_E_INTERNAL, "handoff frame payload of " + std::to_string(n) + " bytes is too large");
	uint8_t head[kHeader] = {};
	put32(head, static_cast<uint32_t>(kHeader - 4 + n + kMacBytes));
	head[4] = static_cast<uint8_t>(t);
	put64(head + 8, send_seq_);
	uint8_t mac[kMacBytes];
	frame_mac(send_key_, head, payload, n, mac);
	write_all(head, kHeader);
	if (n)
		write_all(payload, n);
	write_all(mac, kMacBytes);
	send_seq_++;
}

Frame FrameChannel::receive(int timeout_ms) {
	uint8_t head[kHeader];
	read_exact(head, kHeader, timeout_ms);
	uint32_t len = get32(head);
	auto bad = [&](const std::string &why) {
		fail(CLOUDLET_E_CORRUPT, "handoff frame " + std::to_string(recv_seq_) + " from " + peer_ + ": " + why);
	};
	// Before the first frame has been checked, nothing about the peer is
	// known: a greeting (or a REFUSE) is small, and a stranger's length
	// must not make us wait for or allocate 16 MiB.
	size_t max_payload = recv_seq_ == 0 ? kMaxGreetingPayload : kMaxFramePayload;
	if (len < kHeader - 4 + kMacBytes || len > kHeader - 4 + max_payload + kMacBytes)
		bad("length " + std::to_string(len) + " is out of range");
	if (head[5] || head[6] || head[7])
		bad("flags or reserved bytes are not zero");
	Frame f;
	f.type = static_cast<FrameType>(head[4]);
	f.payload.resize(len - (kHeader - 4) - kMacBytes);
	if (!f.payload.empty())
		read_exact(f.payload.data(), f.payload.size(), timeout_ms);
	uint8_t mac[kMacBytes], want[kMacBytes];
	read_exact(mac, kMacBytes, timeout_ms);
	frame_mac(recv_key_, head, f.payload.data(), f.payload.size(), want);
	if (CRYPTO_memcmp(mac, want, kMacBytes) != 0) {
		if (recv_seq_ == 0)
			fail(CLOUDLET_E_PERMISSION, peer_ + " does not hold the same handoff token (the first frame's MAC is wrong)");
		bad("MAC mismatch (altered in transit, or not from the authenticated peer)");
	}
	if (get64(head + 8) != recv_seq_)
		bad("sequence number " + std::to_string(get64(head + 8)) + " (a frame was replayed, dropped or reordered)");
	if (head[4] < static_cast<uint8_t>(FrameType::Hello) || head[4] > static_cast<uint8_t>(FrameType::Resumed))
		bad("unknown type " + std::to_string(head[4]));
	recv_seq_++;
	return f;
}

void FrameChannel::fail_on_peer_stop(const Frame &f) const {
	if (f.type != FrameType::Abort && f.type != FrameType::Refuse)
		return;
	Stop s = Stop::decode(f.payload);
	// The peer's operator cancelling is not this caller cancelling
	// (CLOUDLET_E_CANCELLED means "cancelled by the caller"; a serving CLI
	// stops on it): here it is the connection that ended.
	cloudlet_status st = s.status == CLOUDLET_E_CANCELLED ? CLOUDLET_E_IO : static_cast<cloudlet_status>(s.status);
	fail(st, peer_ + (f.type == FrameType::Refuse ? " refused the handoff: " : " aborted the handoff: ") + s.message +
	             (s.status == CLOUDLET_E_CANCELLED ? " (there)" : ""));
}

Frame FrameChannel::expect(FrameType t, int timeout_ms) {
	Frame f = receive(timeout_ms);
	if (f.type == t)
		return f;
	fail_on_peer_stop(f);
	fail(CLOUDLET_E_CORRUPT, peer_ + " sent " + frame_type_name(f.type) + " where " + frame_type_name(t) +
	                             " was expected");
}

void FrameChannel::client_handshake(int timeout_ms, uint32_t version) {
	Greeting hello;
	hello.version = version;
	if (RAND_bytes(hello.nonce.data(), kNonce) != 1)
		fail(CLOUDLET_E_INTERNAL, "no random bytes for the handoff nonce");
	send(FrameType::Hello, hello.encode());
	Frame c;
	try {
		c = expect(FrameType::Challenge, timeout_ms);
	} catch (const Error &e) {
		if (e.status() == CLOUDLET_E_IO)
			fail(CLOUDLET_E_PERMISSION, peer_ + " closed the connection after HELLO: it does not hold the same "
			                                    "handoff token");
		throw;
	}
	Greeting challenge = Greeting::decode(c.payload, "CHALLENGE", peer_);
	if (challenge.version != kHandoffVersion)
		fail(CLOUDLET_E_UNSUPPORTED, peer_ + " speaks handoff protocol version " + std::to_string(challenge.version) +
		                                 ", this cloudlet " + std::to_string(kHandoffVersion));
	send_key_ = derive(secret_, "cloudlet-handoff-v1 s->d", hello.nonce.data(), challenge.nonce.data());
	recv_key_ = derive(secret_, "cloudlet-handoff-v1 d->s", hello.nonce.data(), challenge.nonce.data());
}

void FrameChannel::server_handshake(int timeout_ms) {
	Greeting hello = Greeting::decode(expect(FrameType::Hello, timeout_ms).payload, "HELLO", peer_);
	if (hello.version != kHandoffVersion) {
		// REFUSE under K0: the greeting's key and frame layout are the same
		// in every version, so the source can read why.
		std::string why = "this cloudlet speaks handoff protocol version " + std::to_string(kHandoffVersion) +
		                  ", not " + std::to_string(hello.version);
		try {
			send(FrameType::Refuse, Stop{CLOUDLET_E_UNSUPPORTED, why}.encode());
		} catch (const Error &) {
		}
		fail(CLOUDLET_E_UNSUPPORTED, peer_ + " speaks handoff protocol version " + std::to_string(hello.version) +
		                                 ", this cloudlet " + std::to_string(kHandoffVersion));
	}
	Greeting challenge;
	if (RAND_bytes(challenge.nonce.data(), kNonce) != 1)
		fail(CLOUDLET_E_INTERNAL, "no random bytes for the handoff nonce");
	send(FrameType::Challenge, challenge.encode());
	send_key_ = derive(secret_, "cloudlet-handoff-v1 d->s", hello.nonce.data(), challenge.nonce.data());
	recv_key_ = derive(secret_, "cloudlet-handoff-v1 s->d", hello.nonce.data(), challenge.nonce.data());
}

} // namespace cloudlet::net
