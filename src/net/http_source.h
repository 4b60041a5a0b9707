// A streaming HTTP(S) byte source: `cloudlet synthesize https://host/app.overlay`
// decodes an overlay while it is still being downloaded. libcurl runs the
// transfer on a thread of its own and fills a bounded buffer; read() takes from
// it. docs/synthesis-fetch.md describes the guarantees and the decisions.
#pragma once

#include "byte_reader.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace cloudlet::net {

// True for "http://" or "https://" (the scheme compared case-insensitively).
// Says nothing about whether the rest is a valid URL.
bool is_url(const std::string &s);

struct HttpOptions {
	uint64_t max_bytes = 64ull << 30; // refuse bodies larger than this (declared or received)
	long connect_timeout_s = 10;      // TCP connect + TLS handshake (0: libcurl's 300 s)
	long stall_timeout_s = 30;        // abort if fewer than 1 KiB/s arrive for this long (0: never)
	long max_redirects = 5;
	std::string ca_file;              // "": the system's CAs; peer and host are always verified
	size_t buffer_bytes = 8u << 20;   // bounded buffer between the transfer thread and read()
	                                  // (at least 64 KiB is used)
};

// Streams one URL. Errors:
//  - the constructor throws CLOUDLET_E_INVALID_ARG for a malformed URL or a
//    scheme other than http/https (nothing is started then), and CLOUDLET_E_IO
//    if libcurl cannot be set up;
//  - everything that happens on the network is thrown from read(), after the
//    bytes that arrived before it have been returned: CLOUDLET_E_IO (refused
//    connection, DNS, TLS — "TLS" in the message —, HTTP status >= 400, too
//    many redirects or a redirect to another protocol, a body larger than
//    max_bytes, a truncated body), CLOUDLET_E_TIMEOUT (connect or stall);
//  - CLOUDLET_E_CANCELLED from read() at once after cancel(), even with bytes
//    still buffered.
// Messages name the URL without userinfo and without the query string.
// A failed read() keeps failing the same way; after the clean end read()
// keeps returning 0.
class HttpSource : public qemu::Source {
public:
	explicit HttpSource(const std::string &url, const HttpOptions &o = {});
	~HttpSource() override; // stops the transfer promptly, joins the thread, never throws
	HttpSource(const HttpSource &) = delete;
	HttpSource &operator=(const HttpSource &) = delete;

	// Blocks until at least one byte is available (returns 1..n), the body has
	// ended cleanly (returns 0), or an error or cancellation (throws).
	// One reader at a time.
	size_t read(uint8_t *buf, size_t n) override;

	void cancel();                  // thread-safe; a blocked read() then throws CLOUDLET_E_CANCELLED
	uint64_t received() const;      // body bytes received so far (thread-safe)
	int64_t content_length() const; // -1 until known / if not sent (thread-safe)
	double seconds() const;         // since the transfer started; frozen when it ends

	// The URL as error messages show it: without userinfo and query string.
	const std::string &display_url() const;

	struct State; // shared with the transfer thread; defined in the .cc

private:
	std::unique_ptr<State> s_;
};

} // namespace cloudlet::net
