// net::HttpSource against a real HTTP server on 127.0.0.1 (tests/unit/
// http_test_server.py, started as a child process): a 48 MiB body arrives
// byte-identical through odd-sized, sometimes slow reads while the buffer
// stays bounded; a slow consumer is not a stall; HTTP errors, redirects
// (chain, loop, to ftp), truncation (Content-Length and chunked), stalls,
// size caps, cancel, prompt destruction, bad URLs and TLS to a plain port all
// end in the documented status with a message that names the URL (never its
// password or query string). Over HTTPS (the server's self-signed test
// certificate for 127.0.0.1): trusted through ca_file it works; with the
// system's CAs, under another host name, or redirected down to http it fails.
#include "chunk/sha256.h"
#include "host/tempdir.h"
#include "net/http_source.h"
#include "util/error.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csetjmp>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet;
using net::HttpOptions;
using net::HttpSource;

namespace {

constexpr size_t kBodySize = 48u << 20;

struct Server {
	std::unique_ptr<host::TempDir> dir;
	std::vector<uint8_t> body;
	std::string body_sha;
	pid_t pid = -1;
	int port = 0, tls_port = 0;
	std::string ca_file; // the test server's self-signed certificate
};
Server *g = nullptr;

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string url(const std::string &path) { return "http://127.0.0.1:" + std::to_string(g->port) + path; }
std::string tls_url(const std::string &path) {
	return "https://127.0.0.1:" + std::to_string(g->tls_port) + path;
}

bool contains(const std::string &s, const std::string &part) { return s.find(part) != std::string::npos; }

// Deterministic incompressible content (splitmix64).
std::vector<uint8_t> make_body(size_t n) {
	std::vector<uint8_t> v(n);
	uint64_t x = 0x5eed0fc10d1e7ull;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		memcpy(v.data() + i, &z, std::min<size_t>(8, n - i));
	}
	return v;
}

void write_file(const std::string &path, const std::vector<uint8_t> &data) {
	FILE *f = fopen(path.c_str(), "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data.data(), 1, data.size(), f), data.size());
	assert_int_equal(fclose(f), 0);
}

int start_server(void **) {
	// libcurl honours proxy variables; the tests talk to 127.0.0.1 directly.
	for (const char *v : {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"})
		unsetenv(v);
	setenv("no_proxy", "*", 1);

	g = new Server;
	g->body = make_body(kBodySize);
	g->body_sha = chunk::sha256_hex(g->body.data(), g->body.size());
	g->dir = std::make_unique<host::TempDir>("cltest-http-");
	std::string file = g->dir->path() + "/body.bin";
	write_file(file, g->body);

	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); // the server never outlives the test
		dup2(fds[1], 1);
		execl("/usr/bin/python3", "python3", HTTP_TEST_SERVER, file.c_str(), "--tls", static_cast<char *>(nullptr));
		_exit(127);
	}
	close(fds[1]);
	g->pid = pid;
	std::string line;
	auto t0 = Clock::now();
	while (line.find('\n') == std::string::npos && since(t0) < 20) {
		struct pollfd p = {fds[0], POLLIN, 0};
		if (poll(&p, 1, 1000) <= 0)
			continue;
		char buf[64];
		ssize_t n = read(fds[0], buf, sizeof buf);
		if (n <= 0)
			break;
		line.append(buf, static_cast<size_t>(n));
	}
	close(fds[0]);
	char ca[4096];
	if (sscanf(line.c_str(), "PORT %d TLSPORT %d CA %4095s", &g->port, &g->tls_port, ca) != 3) {
		fprintf(stderr, "test server did not start (got \"%s\")\n", line.c_str());
		return -1;
	}
	g->ca_file = ca;
	return 0;
}

int stop_server(void **) {
	if (g && g->pid > 0) {
		kill(g->pid, SIGTERM);
		waitpid(g->pid, nullptr, 0);
	}
	delete g;
	g = nullptr;
	return 0;
}

struct Outcome {
	bool ok = false;
	cloudlet_status status = CLOUDLET_OK;
	std::string message;
	uint64_t bytes = 0;
	std::string sha;
	double seconds = 0;
};

// Reads everything (or until the error) in `chunk`-sized reads.
Outcome fetch(const std::string &u, const HttpOptions &o = {}, size_t chunk = 1 << 20) {
	Outcome out;
	auto t0 = Clock::now();
	chunk::Sha256 h;
	std::vector<uint8_t> buf(chunk);
	try {
		HttpSource src(u, o);
		for (;;) {
			size_t n = src.read(buf.data(), buf.size());
			if (n == 0)
				break;
			assert_true(n <= buf.size());
			h.update(buf.data(), n);
			out.bytes += n;
		}
		assert_int_equal(src.read(buf.data(), buf.size()), 0); // the end stays the end
		assert_int_equal(src.received(), out.bytes);
		out.ok = true;
	} catch (const Error &e) {
		out.status = e.status();
		out.message = e.what();
	}
	out.sha = h.hex();
	out.seconds = since(t0);
	return out;
}

Outcome expect_error(const std::string &u, cloudlet_status want, const HttpOptions &o = {}) {
	Outcome r = fetch(u, o);
	if (r.ok)
		fail_msg("%s: expected status %d, got a clean end after %llu bytes", u.c_str(), want,
		         static_cast<unsigned long long>(r.bytes));
	if (r.status != want)
		fail_msg("%s: expected status %d, got %d: %s", u.c_str(), want, r.status, r.message.c_str());
	printf("# %d after %llu bytes, %.2f s: %s\n", r.status, static_cast<unsigned long long>(r.bytes), r.seconds,
	       r.message.c_str());
	return r;
}

void expect_message(const Outcome &r, const std::string &part) {
	if (!contains(r.message, part))
		fail_msg("message lacks \"%s\": %s", part.c_str(), r.message.c_str());
}

// --- tests ---------------------------------------------------------------------

void test_is_url(void **) {
	assert_true(net::is_url("http://example.com/a.overlay"));
	assert_true(net::is_url("https://example.com/a.overlay"));
	assert_true(net::is_url("HTTPS://example.com/"));
	assert_true(net::is_url("Http://x"));
	assert_false(net::is_url("/var/lib/app.overlay"));
	assert_false(net::is_url("app.overlay"));
	assert_false(net::is_url("file:///etc/passwd"));
	assert_false(net::is_url("ftp://example.com/x"));
	assert_false(net::is_url("http:/x"));
	assert_false(net::is_url("httpx://x"));
	assert_false(net::is_url(""));
}

void test_bad_urls(void **) {
	const char *bad[] = {"file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/", "", "not a url",
	                     "http://", "https://", "http://exa mple.com/x", "http://[::1/x", "/etc/passwd"};
	for (const char *u : bad) {
		try {
			HttpSource src(u);
			fail_msg("%s: accepted", u);
		} catch (const Error &e) {
			if (e.status() != CLOUDLET_E_INVALID_ARG)
				fail_msg("%s: status %d: %s", u, e.status(), e.what());
		}
	}
	// The message names the URL but not its password.
	try {
		HttpSource src("ftp://bob:hunter2@127.0.0.1/x");
		fail_msg("ftp accepted");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_INVALID_ARG);
		assert_true(contains(e.what(), "ftp://127.0.0.1/x"));
		assert_false(contains(e.what(), "hunter2"));
	}
	HttpOptions o;
	o.stall_timeout_s = -1;
	try {
		HttpSource src(url("/body"), o);
		fail_msg("negative timeout accepted");
	} catch (const Error &e) {
		assert_int_equal(e.status(), CLOUDLET_E_INVALID_ARG);
	}
	// An upper-case scheme is fine.
	std::string upper = "HTTP://127.0.0.1:" + std::to_string(g->port) + "/body?size=1000";
	Outcome r = fetch(upper);
	assert_true(r.ok);
	assert_int_equal(r.bytes, 1000);
}

// 48 MiB through a 256 KiB buffer in odd-sized reads, with pauses: the data is
// byte-identical, and at no point is more than the buffer held ahead of us.
void test_large_body_backpressure(void **) {
	HttpOptions o;
	o.buffer_bytes = 256 << 10;
	HttpSource src(url("/body"), o);
	const size_t sizes[] = {1, 7, 13, 4093, 65537, (1 << 20) + 3, 333333, 2, 16385};
	std::vector<uint8_t> buf((1 << 20) + 3);
	chunk::Sha256 h;
	uint64_t got = 0;
	size_t i = 0;
	int pauses = 0;
	uint64_t pause_at[] = {4u << 20, 20u << 20, 40u << 20};
	for (;;) {
		// 1..17-byte reads for the first 256 KiB, then cycling sizes.
		size_t want = got < (256 << 10) ? 1 + (i % 17) : sizes[i % (sizeof sizes / sizeof sizes[0])];
		i++;
		size_t n = src.read(buf.data(), want);
		if (n == 0)
			break;
		assert_true(n <= want);
		if (memcmp(buf.data(), g->body.data() + got, n) != 0)
			fail_msg("content differs in the %zu bytes at offset %llu", n, static_cast<unsigned long long>(got));
		h.update(buf.data(), n);
		got += n;
		uint64_t ahead = src.received() - got;
		if (ahead > o.buffer_bytes)
			fail_msg("%llu bytes buffered ahead of the reader, more than the %zu-byte buffer",
			         static_cast<unsigned long long>(ahead), o.buffer_bytes);
		if (pauses < 3 && got >= pause_at[pauses]) {
			pauses++;
			std::this_thread::sleep_for(std::chrono::milliseconds(300));
			// The transfer was held back while we slept: only the buffer filled.
			ahead = src.received() - got;
			assert_true(ahead <= o.buffer_bytes);
			assert_true(src.received() < kBodySize);
		}
	}
	assert_int_equal(got, kBodySize);
	assert_int_equal(pauses, 3);
	assert_string_equal(h.hex().c_str(), g->body_sha.c_str());
	assert_int_equal(src.content_length(), static_cast<int64_t>(kBodySize));
	assert_int_equal(src.received(), kBodySize);
	assert_int_equal(src.read(buf.data(), 10), 0);
	assert_true(src.seconds() > 0.9); // three 300 ms pauses at least
}

void test_throughput(void **) {
	Outcome r = fetch(url("/body"));
	assert_true(r.ok);
	assert_int_equal(r.bytes, kBodySize);
	assert_string_equal(r.sha.c_str(), g->body_sha.c_str());
	printf("# 48 MiB over 127.0.0.1 in %.3f s: %.0f MiB/s (default options, 1 MiB reads)\n", r.seconds,
	       48.0 / r.seconds);
}

// Slow decoding is not a stalled network: a 2 s stall timeout survives a 3 s
// pause of the reader and then a 2.5 s trickle of small reads.
void test_slow_consumer_is_not_a_stall(void **) {
	HttpOptions o;
	o.stall_timeout_s = 2;
	o.buffer_bytes = 64 << 10;
	HttpSource src(url("/body"), o);
	std::vector<uint8_t> buf(1 << 20);
	chunk::Sha256 h;
	uint64_t got = 0;
	auto take = [&](size_t n) {
		size_t k = src.read(buf.data(), n);
		h.update(buf.data(), k);
		got += k;
		return k;
	};
	while (got < (1 << 20))
		take(1 << 20);
	std::this_thread::sleep_for(std::chrono::milliseconds(3000));
	auto t0 = Clock::now();
	while (since(t0) < 2.5) {
		take(16 << 10);
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	}
	while (take(buf.size()) > 0) {
	}
	assert_int_equal(got, kBodySize);
	assert_string_equal(h.hex().c_str(), g->body_sha.c_str());
}

void test_http_status(void **) {
	Outcome r = expect_error(url("/missing"), CLOUDLET_E_IO);
	expect_message(r, "HTTP status 404");
	expect_message(r, url("/missing"));
	assert_int_equal(r.bytes, 0);

	std::string secret = "http://alice:s3cret@127.0.0.1:" + std::to_string(g->port) + "/missing?token=abc123";
	r = expect_error(secret, CLOUDLET_E_IO);
	expect_message(r, "404");
	expect_message(r, "http://127.0.0.1:" + std::to_string(g->port) + "/missing");
	assert_false(contains(r.message, "s3cret"));
	assert_false(contains(r.message, "alice"));
	assert_false(contains(r.message, "abc123"));
}

void test_redirects(void **) {
	Outcome r = fetch(url("/redirect?n=3"));
	if (!r.ok)
		fail_msg("%s", r.message.c_str());
	assert_int_equal(r.bytes, kBodySize);
	assert_string_equal(r.sha.c_str(), g->body_sha.c_str());

	HttpOptions o;
	o.max_redirects = 2;
	r = expect_error(url("/redirect?n=3"), CLOUDLET_E_IO, o);
	expect_message(r, "redirect");

	r = expect_error(url("/loop"), CLOUDLET_E_IO);
	expect_message(r, "too many redirects");
	expect_message(r, url("/loop"));

	r = expect_error(url("/to-ftp"), CLOUDLET_E_IO);
	expect_message(r, "protocol");
	assert_int_equal(r.bytes, 0);

	// A redirect libcurl cannot follow is not the file, even with no body.
	r = expect_error(url("/no-location"), CLOUDLET_E_IO);
	expect_message(r, "HTTP status 302");
}

void test_truncated(void **) {
	Outcome r = expect_error(url("/truncated?size=1048576&send=307200"), CLOUDLET_E_IO);
	expect_message(r, "truncated");
	expect_message(r, "got 307200 of 1048576 bytes");
	assert_int_equal(r.bytes, 307200); // what did arrive was handed over first

	r = expect_error(url("/chunked-truncated?send=300000"), CLOUDLET_E_IO);
	expect_message(r, "truncated");
	assert_int_equal(r.bytes, 300000);

	// Complete chunked bodies are fine; content_length() stays -1.
	HttpSource src(url("/chunked?size=1000000"));
	std::vector<uint8_t> buf(4099);
	uint64_t got = 0;
	while (size_t n = src.read(buf.data(), buf.size())) {
		assert_memory_equal(buf.data(), g->body.data() + got, n);
		got += n;
	}
	assert_int_equal(got, 1000000);
	assert_int_equal(src.content_length(), -1);

	// Documented limit: without a length the close is the end.
	r = fetch(url("/close-no-length?size=500000"));
	assert_true(r.ok);
	assert_int_equal(r.bytes, 500000);
}

// Headers then silence, and no answer at all: both time out after ~2 s. The
// two transfers run at the same time (each on its own thread).
void test_stall(void **) {
	HttpOptions o;
	o.stall_timeout_s = 2;
	auto t0 = Clock::now();
	HttpSource after_headers(url("/stall"), o);
	HttpSource no_answer(url("/silent"), o);
	HttpSource *both[] = {&after_headers, &no_answer};
	for (HttpSource *s : both) {
		uint8_t b[100];
		try {
			s->read(b, sizeof b);
			fail_msg("a stalled transfer returned data");
		} catch (const Error &e) {
			if (e.status() != CLOUDLET_E_TIMEOUT)
				fail_msg("status %d: %s", e.status(), e.what());
			assert_true(contains(e.what(), "stalled"));
			printf("# %d after %.2f s: %s\n", e.status(), since(t0), e.what());
		}
	}
	double t = since(t0);
	assert_true(t >= 1.5);
	assert_true(t < 10);
	assert_int_equal(after_headers.content_length(), 1 << 20);
	assert_int_equal(no_answer.content_length(), -1);
}

void test_max_bytes(void **) {
	HttpOptions o;
	o.max_bytes = 1 << 20;
	// Declared too large: refused before any byte.
	Outcome r = expect_error(url("/body"), CLOUDLET_E_IO, o);
	expect_message(r, "too large");
	assert_int_equal(r.bytes, 0);
	// No length declared: counted as it arrives.
	r = expect_error(url("/chunked?size=3000000"), CLOUDLET_E_IO, o);
	expect_message(r, "too large");
	assert_true(r.bytes <= o.max_bytes);
	r = expect_error(url("/close-no-length?size=3000000"), CLOUDLET_E_IO, o);
	expect_message(r, "too large");
	// Exactly the limit is fine.
	r = fetch(url("/body?size=1048576"), o);
	assert_true(r.ok);
	assert_int_equal(r.bytes, 1 << 20);
}

void test_cancel(void **) {
	// A read() blocked on a stalled server.
	{
		HttpSource src(url("/stall"));
		std::thread t([&] {
			std::this_thread::sleep_for(std::chrono::milliseconds(300));
			src.cancel();
		});
		auto t0 = Clock::now();
		uint8_t b[16];
		try {
			src.read(b, sizeof b);
			fail_msg("read returned after cancel");
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CANCELLED);
		}
		t.join();
		assert_true(since(t0) < 2);
		// Stays cancelled.
		try {
			src.read(b, sizeof b);
			fail_msg("read returned after cancel");
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CANCELLED);
		}
	}
	// Cancelled with bytes buffered: the next read() fails anyway.
	{
		HttpSource src(url("/body"));
		uint8_t b[4096];
		assert_true(src.read(b, sizeof b) > 0);
		src.cancel();
		src.cancel(); // twice is fine
		try {
			src.read(b, sizeof b);
			fail_msg("read returned after cancel");
		} catch (const Error &e) {
			assert_int_equal(e.status(), CLOUDLET_E_CANCELLED);
		}
	}
}

void test_destructor_is_prompt(void **) {
	const char *paths[] = {"/body", "/stall", "/silent", "/body"};
	for (int i = 0; i < 4; i++) {
		auto t0 = Clock::now();
		{
			HttpOptions o;
			o.buffer_bytes = 64 << 10;
			HttpSource src(url(paths[i]), o);
			if (i == 0) { // mid-body, paused on a full buffer
				std::vector<uint8_t> b(100 << 10);
				size_t got = 0;
				while (got < b.size())
					got += src.read(b.data() + got, b.size() - got);
				std::this_thread::sleep_for(std::chrono::milliseconds(100));
			} else if (i < 3) {
				std::this_thread::sleep_for(std::chrono::milliseconds(200));
			} // i == 3: destroyed at once, maybe before the connection is up
		}
		double t = since(t0);
		if (t > 1.5)
			fail_msg("%s: destruction took %.2f s", paths[i], t);
	}
}

void test_tls_to_plain_port(void **) {
	std::string u = "https://127.0.0.1:" + std::to_string(g->port) + "/body";
	HttpOptions o;
	o.connect_timeout_s = 5;
	Outcome r = expect_error(u, CLOUDLET_E_IO, o);
	expect_message(r, "TLS");
	expect_message(r, u);
	assert_true(r.seconds < 5);
	// An unreadable CA file is a TLS failure too, not a silent fallback.
	o.ca_file = "/nonexistent/ca.pem";
	r = expect_error(u, CLOUDLET_E_IO, o);
	expect_message(r, "TLS");
}

void test_tls_verified(void **) {
	HttpOptions o;
	o.ca_file = g->ca_file;
	Outcome r = fetch(tls_url("/body"), o);
	if (!r.ok)
		fail_msg("%s", r.message.c_str());
	assert_int_equal(r.bytes, kBodySize);
	assert_string_equal(r.sha.c_str(), g->body_sha.c_str());
	printf("# 48 MiB over TLS on 127.0.0.1 in %.3f s: %.0f MiB/s\n", r.seconds, 48.0 / r.seconds);

	// The system's CAs do not know the test certificate.
	r = expect_error(tls_url("/body"), CLOUDLET_E_IO);
	expect_message(r, "TLS");
	// The certificate names 127.0.0.1 only.
	r = expect_error("https://localhost:" + std::to_string(g->tls_port) + "/body", CLOUDLET_E_IO, o);
	expect_message(r, "TLS");
	// From https, never down to http.
	r = expect_error(tls_url("/to-plain"), CLOUDLET_E_IO, o);
	expect_message(r, "protocol");
	assert_int_equal(r.bytes, 0);
}

void test_connection_refused(void **) {
	// A port that was free a moment ago.
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
	socklen_t len = sizeof a;
	assert_int_equal(getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len), 0);
	close(fd);
	std::string u = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/x.overlay";
	Outcome r = expect_error(u, CLOUDLET_E_IO);
	expect_message(r, "connect");
	expect_message(r, u);
}

} // namespace

int main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_is_url),
	    cmocka_unit_test(test_bad_urls),
	    cmocka_unit_test(test_large_body_backpressure),
	    cmocka_unit_test(test_throughput),
	    cmocka_unit_test(test_slow_consumer_is_not_a_stall),
	    cmocka_unit_test(test_http_status),
	    cmocka_unit_test(test_redirects),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_stall),
	    cmocka_unit_test(test_max_bytes),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_destructor_is_prompt),
	    cmocka_unit_test(test_tls_to_plain_port),
	    cmocka_unit_test(test_tls_verified),
	    cmocka_unit_test(test_connection_refused),
	};
	return cmocka_run_group_tests(tests, start_server, stop_server);
}
