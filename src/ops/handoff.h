// VM handoff (docs/handoff.md, protocol docs/protocols/handoff.md): a
// running instance of a base moves live to another cloudlet that holds the
// same base, sending only what that cloudlet lacks.
#pragma once

#include "chunk/block_codec.h"
#include "net/secure_link.h"
#include "ops/context.h"
#include "util/progress.h"
#include "virt/nic_swap.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cloudlet::net {
class TcpListener;
}

namespace cloudlet::ops {

struct HandoffOptions {
	net::SecurityConfig security; // TLS with the token's PSK, TLS with X.509, or plaintext; the token
	                              // from ops/handoff_choices.h: read_handoff_token
	int timeout_s = 60;           // silence from the peer that ends the handoff
	int handshake_s = 10;         // connect -> authenticated: a peer that takes longer is dropped
	int resume_s = 30;            // a link lost while the VM runs: replaced within this (0: not at all)
	// receive: the credentials anew (a token file re-read), for each
	// connection: rotation takes effect at the next one. Empty: `security`.
	std::function<net::SecurityConfig()> reload_security;
	// send
	std::string codec = "auto"; // items: "auto" (chosen from link and CPU, docs/handoff.md), "zstd", "lzma", "none"
	int level = chunk::default_level(chunk::Codec::Zstd);
	uint64_t queue_bytes = 8u << 20; // dirty chunks waiting at first (backpressure on QEMU beyond);
	                                 // then what the pipeline moves in half the downtime target
	unsigned downtime_ms = 500;      // the downtime target
	// receive
	std::string name;           // "": the source's domain name
	std::string virt_type;
	std::string uuid;           // "": a new random one
	virt::NicRequest nic;
};

struct HandoffInfo {
	std::string domain, uuid, peer, base_id, dir;
	std::vector<std::string> macs;
	std::string codec;           // send: the codec in use at the end ("zstd-3" ...)
	uint64_t codec_switches = 0; // send: times the adaptive choice changed
	uint64_t bytes_sent = 0, bytes_received = 0;
	uint64_t memory_items = 0, disk_items = 0, stored_items = 0, raw_bytes = 0, replaced = 0;
	double total_seconds = 0, downtime_seconds = 0, link_mbps = 0;
	// send: the downtime's parts: pause -> FINAL sent (disk re-read, queue
	// drained over the link), FINAL -> READY (the destination restores)
	double drain_seconds = 0, restore_seconds = 0;
	// connections replaced after a cut; send: item bytes unacknowledged at
	// the cuts, and of them those sent again
	uint64_t resumes = 0, unacked_bytes = 0, resent_bytes = 0;
};

// Source side: `destination` is "HOST:PORT". On success the source domain
// is gone and the destination runs the VM. On failure the source domain is
// running (or as it was) and unchanged.
HandoffInfo handoff_send(Context &ctx, const std::string &domain, const std::string &destination,
                         const HandoffOptions &o, Progress &progress);

// Destination side: a listening socket, then one handoff per receive().
class HandoffListener {
public:
	HandoffListener(Context &ctx, const std::string &address); // "ADDR:PORT" (PORT 0: any free)
	~HandoffListener();
	HandoffListener(const HandoffListener &) = delete;
	HandoffListener &operator=(const HandoffListener &) = delete;
	unsigned port() const;
	// Waits for one authenticated handoff and serves it; connections that
	// fail before they authenticate are logged (a warning each) and do not
	// end the wait (net/handoff_gate.h). On failure nothing of the handoff
	// is left on this cloudlet.
	HandoffInfo receive(const HandoffOptions &o, Progress &progress);

private:
	Context &ctx_;
	std::unique_ptr<net::TcpListener> listener_;
};

} // namespace cloudlet::ops
