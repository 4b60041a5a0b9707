// TCP as the handoff uses it: "HOST:PORT" addresses (a name, an IPv4
// address or a bracketed IPv6 one, "[::1]:7000"), one connection out and a
// listening socket that accepts connections in. Sockets are close-on-exec;
// connections have TCP_NODELAY (ACKs and small frames must not wait for
// Nagle's algorithm). Errors name the address.
#pragma once

#include "util/progress.h"
#include "util/unique_fd.h"

#include <atomic>
#include <optional>
#include <string>

namespace cloudlet::net {

struct HostPort {
	std::string host, port; // host without brackets; "" for a listen address: every local one
};

// A destination: "HOST:PORT", split at the last ':'; CLOUDLET_E_INVALID_ARG
// unless both parts are there.
HostPort parse_destination(const std::string &address);
// A listen address: "ADDR:PORT" or ":PORT" (every local address); PORT 0
// is any free port. CLOUDLET_E_INVALID_ARG without a port.
HostPort parse_listen_address(const std::string &address);

// Connects to each address `destination` resolves to in turn (blocking,
// the system's connect timeout). CLOUDLET_E_INVALID_ARG for a bad address,
// CLOUDLET_E_IO when it does not resolve or nothing accepts.
UniqueFd connect_tcp(const std::string &destination);
// The same within `timeout_ms` (-1: the system's): CLOUDLET_E_TIMEOUT after
// it; `stop` (may be null), set by another thread, ends the wait within
// 100 ms with CLOUDLET_E_CANCELLED.
UniqueFd connect_tcp(const std::string &destination, int timeout_ms, const std::atomic<bool> *stop);

struct TcpConnection {
	UniqueFd fd;
	std::string peer; // "ADDR:PORT" numerically; "" if the system cannot say
};

class TcpListener {
public:
	// Listens on the first address `address` resolves to (SO_REUSEADDR).
	// CLOUDLET_E_INVALID_ARG for an address that is bad or does not resolve;
	// a socket that cannot be bound is errno's status.
	explicit TcpListener(const std::string &address);
	unsigned port() const { return port_; }
	// Waits for one connection; `progress.check()` every 200 ms lets the
	// caller cancel the wait.
	TcpConnection accept(Progress &progress);
	// One connection if one comes within `timeout_ms`.
	std::optional<TcpConnection> accept_for(int timeout_ms);

private:
	UniqueFd fd_;
	unsigned port_ = 0;
};

} // namespace cloudlet::net
