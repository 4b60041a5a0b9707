#include "net/tcp.h"

#include "util/error.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>

namespace cloudlet::net {

namespace {

// Connections the kernel completes before accept(): the front door
// (net/handoff_gate.h) takes them at once, so this only absorbs bursts.
constexpr int kBacklog = 128;

// Splits at the last ':' (an IPv6 address has more) and drops the brackets
// of "[v6]"; false without a port.
bool split(const std::string &address, HostPort &out) {
	size_t colon = address.rfind(':');
	if (colon == std::string::npos || colon + 1 == address.size())
		return false;
	out.host = address.substr(0, colon);
	out.port = address.substr(colon + 1);
	if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']')
		out.host = out.host.substr(1, out.host.size() - 2);
	return true;
}

using AddrInfo = std::unique_ptr<addrinfo, decltype(&freeaddrinfo)>;

AddrInfo resolve(const HostPort &hp, int flags, cloudlet_status status, const std::string &address) {
	addrinfo hints{};
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = flags;
	addrinfo *res = nullptr;
	if (int e = getaddrinfo(hp.host.empty() ? nullptr : hp.host.c_str(), hp.port.c_str(), &hints, &res))
		fail(status, "cannot resolve " + address + ": " + gai_strerror(e));
	return AddrInfo(res, freeaddrinfo);
}

void no_delay(int fd) {
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string numeric_name(const sockaddr_storage &a) {
	char host[NI_MAXHOST], port[NI_MAXSERV];
	if (getnameinfo(reinterpret_cast<const sockaddr *>(&a), sizeof a, host, sizeof host, port, sizeof port,
	                NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return "";
	return std::string(host) + ":" + port;
}

} // namespace

HostPort parse_destination(const std::string &address) {
	HostPort hp;
	if (!split(address, hp) || hp.host.empty())
		fail(CLOUDLET_E_INVALID_ARG, "destination '" + address + "' is not HOST:PORT");
	return hp;
}

HostPort parse_listen_address(const std::string &address) {
	HostPort hp;
	if (!split(address, hp))
		fail(CLOUDLET_E_INVALID_ARG, "listen address '" + address + "' is not ADDR:PORT");
	return hp;
}

UniqueFd connect_tcp(const std::string &destination) { return connect_tcp(destination, -1, nullptr); }

UniqueFd connect_tcp(const std::string &destination, int timeout_ms, const std::atomic<bool> *stop) {
	AddrInfo res = resolve(parse_destination(destination), 0, CLOUDLET_E_IO, destination);
	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	int err = 0;
	for (addrinfo *a = res.get(); a; a = a->ai_next) {
		UniqueFd fd(socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
		if (!fd)
			continue;
		if (connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
			if (errno != EINPROGRESS) {
				err = errno;
				continue;
			}
			// Waited for in slices, so that `stop` is seen within 100 ms.
			for (;;) {
				if (stop && *stop)
					fail(CLOUDLET_E_CANCELLED, "connecting to " + destination + " was stopped");
				int slice = 100;
				if (timeout_ms >= 0) {
					auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
					                                                                  std::chrono::steady_clock::now());
					if (left.count() <= 0)
						fail(CLOUDLET_E_TIMEOUT, "cannot connect to " + destination + " within " +
						                             std::to_string(timeout_ms) + " ms");
					slice = static_cast<int>(std::min<int64_t>(slice, left.count()));
				}
				pollfd p{fd.get(), POLLOUT, 0};
				int n = poll(&p, 1, slice);
				if (n < 0 && errno != EINTR)
					fail_errno("poll", errno);
				if (n > 0)
					break;
			}
			socklen_t len = sizeof err;
			if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
				err = errno;
			if (err)
				continue;
		}
		// Blocking again: the link layers above set their own timeouts.
		fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
		no_delay(fd.get());
		return fd;
	}
	fail(CLOUDLET_E_IO, "cannot connect to " + destination + ": " + errno_message("connect", err));
}

TcpListener::TcpListener(const std::string &address) {
	AddrInfo res = resolve(parse_listen_address(address), AI_PASSIVE, CLOUDLET_E_INVALID_ARG, address);
	fd_.reset(socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!fd_)
		fail_errno("cannot create a socket", errno);
	int one = 1;
	setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd_.get(), res->ai_addr, res->ai_addrlen) != 0 || listen(fd_.get(), kBacklog) != 0)
		fail_errno("cannot listen on " + address, errno);
	sockaddr_storage a{};
	socklen_t len = sizeof a;
	getsockname(fd_.get(), reinterpret_cast<sockaddr *>(&a), &len);
	port_ = ntohs(a.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6 *>(&a)->sin6_port
	                                      : reinterpret_cast<sockaddr_in *>(&a)->sin_port);
}

TcpConnection TcpListener::accept(Progress &progress) {
	for (;;) {
		if (auto c = accept_for(200))
			return std::move(*c);
		progress.check();
	}
}

std::optional<TcpConnection> TcpListener::accept_for(int timeout_ms) {
	pollfd pfd{fd_.get(), POLLIN, 0};
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return std::nullopt;
	TcpConnection c;
	sockaddr_storage peer{};
	socklen_t len = sizeof peer;
	c.fd.reset(accept4(fd_.get(), reinterpret_cast<sockaddr *>(&peer), &len, SOCK_CLOEXEC));
	if (!c.fd) {
		if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
			return std::nullopt;
		fail_errno("accept failed", errno);
	}
	no_delay(c.fd.get());
	c.peer = numeric_name(peer);
	return c;
}

} // namespace cloudlet::net
