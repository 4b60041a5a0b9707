// The byte stream a handoff connection runs over (docs/security.md
// "Handoff confidentiality", docs/protocols/handoff.md "Transport"): TLS 1.3
// over the TCP socket, authenticated both ways either by an external PSK
// derived from the shared token or by X.509 certificates issued by a CA in
// QEMU's and libvirt's migration layout; or, only when the operator asks
// for it by name, the socket itself in clear. The frame layer above
// (net/handoff_wire.h) is the same over all three.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace cloudlet::net {

enum class Security {
	TlsPsk,           // TLS 1.3, external PSK from the token (the default)
	TlsX509,          // TLS 1.3, certificates both ways, one CA
	PlaintextUnsafe,  // no TLS: frames authenticated by the token, readable by anyone on the path
};
const char *security_name(Security s);

struct SecurityConfig {
	Security mode = Security::TlsPsk;
	std::string token;    // TlsPsk and PlaintextUnsafe: the shared secret (>= 32 bytes)
	std::string x509_dir; // TlsX509: ca-cert.pem, [ca-crl.pem], server-cert.pem + server-key.pem
	                      // (destination), client-cert.pem + client-key.pem (source)
};

// One connection's bytes, after its handshake. One thread may read while
// another writes.
class Link {
public:
	virtual ~Link() = default;
	// 1..n bytes. CLOUDLET_E_TIMEOUT after `timeout_ms` without any (-1:
	// wait forever), CLOUDLET_E_IO when the peer closed or the socket failed.
	virtual size_t read_some(uint8_t *p, size_t n, int timeout_ms) = 0;
	virtual void write_all(const uint8_t *p, size_t n) = 0;
	// Ends both directions: a blocked read or write returns with an error.
	virtual void shutdown() = 0;
	// What the frame layer derives its MAC keys from: the token in clear,
	// a TLS exporter value under TLS (frames bound to this TLS session).
	virtual std::string frame_secret() const = 0;
	// "TLS 1.3 TLS_AES_128_GCM_SHA256 (PSK)", "plaintext (unsafe)".
	virtual std::string description() const = 0;
	// Bytes on the socket, TLS records included.
	virtual uint64_t wire_bytes_sent() const = 0;
	virtual uint64_t wire_bytes_received() const = 0;
};

// A side's credentials, loaded and checked once (a missing or unreadable
// certificate, a key that does not match it, a short token:
// CLOUDLET_E_INVALID_ARG / CLOUDLET_E_PERMISSION at once, not at the first
// connection). Thread-safe: many handshakes may run on one at a time.
class LinkSetup {
public:
	enum class Role { Client, Server };
	LinkSetup(const SecurityConfig &config, Role role);
	~LinkSetup();
	LinkSetup(const LinkSetup &) = delete;
	LinkSetup &operator=(const LinkSetup &) = delete;

	Security mode() const { return mode_; }
	// Whether `config` is what this setup was made from, files included:
	// the same mode and token, the same certificate directory with its
	// files unchanged (inode, size, modification time). A cheap check, so
	// that a receiver may ask at every connection and reload only on a
	// rotation or renewal.
	bool current(const SecurityConfig &config) const;
	// Runs the handshake on the connected socket `fd` (not owned; made
	// non-blocking) within `deadline_ms`. `peer` names the other side in
	// errors; a client verifies the server's certificate against `host`
	// (a name or an IP address). A peer that cannot prove the same token or
	// a certificate of the CA: CLOUDLET_E_PERMISSION; not TLS, or TLS below
	// 1.3: CLOUDLET_E_PERMISSION too (nothing of it is trusted);
	// CLOUDLET_E_TIMEOUT past the deadline; CLOUDLET_E_IO if the connection
	// fails.
	// `received`, if given, counts the bytes read from the socket as they
	// come (for a caller that watches the handshake's progress); the link
	// shares it, so it may outlive the caller's interest.
	std::unique_ptr<Link> open(int fd, const std::string &peer, const std::string &host, int deadline_ms,
	                           std::shared_ptr<std::atomic<uint64_t>> received = {}) const;

private:
	struct Tls;
	Security mode_;
	Role role_;
	std::string token_, x509_dir_, x509_stamp_;
	std::unique_ptr<Tls> tls_;
};

} // namespace cloudlet::net
