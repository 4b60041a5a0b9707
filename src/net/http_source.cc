// HttpSource: libcurl's multi interface on a thread of its own, feeding a
// bounded ring buffer that read() drains.
//
// Backpressure. When the ring has no room for a chunk, the write callback
// returns CURL_WRITEFUNC_PAUSE (libcurl keeps that chunk and stops reading the
// socket, so TCP pushes back on the server). The transfer thread sleeps in
// curl_multi_poll(); read() calls curl_multi_wakeup() once a quarter of the
// ring is free, and the transfer thread — the only thread that ever touches
// the easy handle — unpauses with curl_easy_pause(). Nothing spins.
//
// Stall timeout vs. a slow consumer. The stall timeout is libcurl's
// CURLOPT_LOW_SPEED_LIMIT/TIME (1 KiB/s for stall_timeout_s). A paused
// transfer is exempt from that check and unpausing resets its clock (read in
// libcurl 7.88.1: Curl_speedcheck() returns early for KEEP_RECV_PAUSE and
// curl_easy_pause() clears state.keeps_speed), so time spent waiting for a
// slow decoder is never counted as a stalled network. (Had we blocked inside
// the write callback instead, libcurl would have seen no progress for as long
// as the decoder was slow and could abort a healthy transfer.)
//
// Truncation. A body shorter than its Content-Length, or a chunked body
// without its final chunk, ends in CURLE_PARTIAL_FILE, reported as
// "truncated download". A response with neither (HTTP/1.0 style, the end
// marked only by the server closing the connection) cannot be told apart from
// a complete one: it ends cleanly here, and the overlay's own checksums catch
// a short file when it is decoded.
#include "net/http_source.h"

#include "util/error.h"

#include <cloudlet.h>
#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

namespace cloudlet::net {

namespace {

#define CLOUDLET_HTTP_STR2(x) #x
#define CLOUDLET_HTTP_STR(x) CLOUDLET_HTTP_STR2(x)
constexpr const char *kUserAgent = "libcloudlet/" CLOUDLET_HTTP_STR(CLOUDLET_VERSION_MAJOR) "." CLOUDLET_HTTP_STR(
    CLOUDLET_VERSION_MINOR) "." CLOUDLET_HTTP_STR(CLOUDLET_VERSION_PATCH);

constexpr long kStallBytesPerSecond = 1024;
constexpr size_t kMinBuffer = 64 << 10; // > CURL_MAX_WRITE_SIZE, the largest chunk libcurl hands over

void global_init() {
	static std::once_flag once;
	static CURLcode rc = CURLE_OK;
	std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
	if (rc != CURLE_OK)
		fail(CLOUDLET_E_IO, std::string("cannot initialise libcurl: ") + curl_easy_strerror(rc));
}

bool starts_with_ci(const std::string &s, const char *prefix) {
	size_t n = strlen(prefix);
	if (s.size() < n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= 'A' && c <= 'Z')
			c = static_cast<char>(c - 'A' + 'a');
		if (c != prefix[i])
			return false;
	}
	return true;
}

// The URL for messages: no "user:password@", no query string or fragment
// (signed URLs carry their credentials there), control characters escaped,
// bounded length. Works on malformed input too.
std::string redact(const std::string &url) {
	std::string s = url;
	size_t authority = s.find("://");
	authority = authority == std::string::npos ? 0 : authority + 3;
	size_t authority_end = s.find_first_of("/?#", authority);
	if (authority_end == std::string::npos)
		authority_end = s.size();
	size_t at = s.rfind('@', authority_end == 0 ? 0 : authority_end - 1);
	if (at != std::string::npos && at >= authority && at < authority_end)
		s.erase(authority, at + 1 - authority);
	size_t q = s.find_first_of("?#", authority);
	if (q != std::string::npos) {
		bool query = s[q] == '?';
		s.erase(q);
		if (query)
			s += "?...";
	}
	std::string out;
	for (unsigned char c : s) {
		if (c < 0x20 || c == 0x7f) {
			static const char hex[] = "0123456789ABCDEF";
			out += '%';
			out += hex[c >> 4];
			out += hex[c & 15];
		} else {
			out += static_cast<char>(c);
		}
		if (out.size() > 512) {
			out += "...";
			break;
		}
	}
	return out;
}

bool is_tls_error(CURLcode rc) {
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
		return true;
	default:
		return false;
	}
}

} // namespace

bool is_url(const std::string &s) { return starts_with_ci(s, "http://") || starts_with_ci(s, "https://"); }

struct HttpSource::State {
	HttpOptions opt;
	std::string url, shown;
	bool https = false;
	CURL *easy = nullptr;
	CURLM *multi = nullptr;
	char errbuf[CURL_ERROR_SIZE] = {};
	std::thread thread;
	std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
	std::atomic<int64_t> elapsed_ns_at_end{-1};
	std::atomic<uint64_t> received{0};
	std::atomic<int64_t> content_length{-1};
	std::atomic<bool> cancel_flag{false}; // read by the transfer thread without the lock

	// The ring and the hand-over, guarded by mu.
	std::mutex mu;
	std::condition_variable cv;
	std::unique_ptr<uint8_t[]> ring;
	size_t capacity = 0, head = 0, size = 0;
	size_t resume_at = 0;    // unpause once this much of the ring is free
	bool paused = false;     // the write callback returned CURL_WRITEFUNC_PAUSE
	bool wake_sent = false;  // read() has already woken the transfer thread for that
	bool cancelled = false;
	bool finished = false;
	std::optional<Error> error; // set once when finished with a failure

	// Transfer thread only.
	std::optional<Error> own_error; // a failure our callbacks detected
	std::string status_line;
	bool body_started = false;

	~State() {
		if (multi && easy)
			curl_multi_remove_handle(multi, easy);
		if (easy)
			curl_easy_cleanup(easy);
		if (multi)
			curl_multi_cleanup(multi);
	}

	Error io(const std::string &cause) const { return Error(CLOUDLET_E_IO, shown + ": " + cause); }

	size_t free_space() const { return capacity - size; }

	void wake() {
		if (multi)
			curl_multi_wakeup(multi);
	}

	void run() noexcept;
	Error classify(CURLcode rc);
	std::string http_status() const;
};

namespace {

// Header lines of every response (redirects and 1xx included): remembers the
// status line; at the end of a header block refuses HTTP status >= 400 (like
// CURLOPT_FAILONERROR, but with the status in our message) and a declared
// length over max_bytes, and records Content-Length.
size_t on_header_unsafe(char *data, size_t size, size_t nmemb, void *userdata) {
	auto *s = static_cast<HttpSource::State *>(userdata);
	size_t len = size * nmemb;
	if (s->cancel_flag.load())
		return 0;
	std::string line(data, len);
	while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
		line.pop_back();
	if (line.compare(0, 5, "HTTP/") == 0) {
		s->status_line = line;
		return len;
	}
	if (!line.empty())
		return len;
	long code = 0;
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
	if (code >= 400) {
		s->own_error = s->io(s->http_status());
		return 0;
	}
	if (code >= 200 && code < 300) {
		curl_off_t cl = -1;
		if (curl_easy_getinfo(s->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl >= 0) {
			s->content_length.store(cl);
			if (static_cast<uint64_t>(cl) > s->opt.max_bytes) {
				s->own_error = s->io("body too large: Content-Length " + std::to_string(cl) +
				                     " bytes exceeds the limit of " + std::to_string(s->opt.max_bytes) + " bytes");
				return 0;
			}
		}
	}
	return len;
}

size_t on_body_unsafe(char *data, size_t size, size_t nmemb, void *userdata) {
	auto *s = static_cast<HttpSource::State *>(userdata);
	size_t len = size * nmemb;
	if (!s->body_started) {
		s->body_started = true;
		long code = 0;
		curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
		if (code < 200 || code >= 300) { // e.g. a 3xx libcurl did not follow (no Location)
			s->own_error = s->io("unexpected " + s->http_status());
			return 0;
		}
	}
	if (len == 0)
		return 0;
	uint64_t got = s->received.load(std::memory_order_relaxed);
	if (got + len > s->opt.max_bytes) {
		s->own_error = s->io("body too large: more than the limit of " + std::to_string(s->opt.max_bytes) +
		                     " bytes arrived");
		return 0;
	}
	std::lock_guard<std::mutex> lk(s->mu);
	if (s->cancelled)
		return 0;
	if (s->free_space() < len) {
		// libcurl keeps this chunk and hands it over again after the unpause.
		s->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	size_t tail = (s->head + s->size) % s->capacity;
	size_t first = std::min(len, s->capacity - tail);
	memcpy(s->ring.get() + tail, data, first);
	memcpy(s->ring.get(), data + first, len - first);
	s->size += len;
	s->received.store(got + len, std::memory_order_relaxed);
	s->cv.notify_one();
	return len;
}

// No exception may unwind through libcurl: returning 0 fails the transfer
// (with own_error if it was recorded, else CURLE_WRITE_ERROR).
size_t on_header(char *data, size_t size, size_t nmemb, void *userdata) {
	try {
		return on_header_unsafe(data, size, nmemb, userdata);
	} catch (...) {
		return 0;
	}
}

size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
	try {
		return on_body_unsafe(data, size, nmemb, userdata);
	} catch (...) {
		return 0;
	}
}

} // namespace

std::string HttpSource::State::http_status() const {
	long code = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	std::string m = "HTTP status " + std::to_string(code);
	// "HTTP/1.1 404 Not Found": add the reason phrase if there is one.
	size_t sp = status_line.find(' ');
	if (sp != std::string::npos) {
		size_t sp2 = status_line.find(' ', sp + 1);
		if (sp2 != std::string::npos && sp2 + 1 < status_line.size())
			m += " (" + redact(status_line.substr(sp2 + 1)) + ")";
	}
	return m;
}

Error HttpSource::State::classify(CURLcode rc) {
	if ((rc == CURLE_WRITE_ERROR || rc == CURLE_ABORTED_BY_CALLBACK || rc == CURLE_OK) && own_error)
		return *own_error;
	std::string detail = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
	long redirects = 0;
	curl_easy_getinfo(easy, CURLINFO_REDIRECT_COUNT, &redirects);
	if (redirects > 0) {
		char *eff = nullptr;
		if (curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff)
			detail += " (after " + std::to_string(redirects) + " redirect(s), at " + redact(eff) + ")";
	}
	uint64_t got = received.load();
	switch (rc) {
	case CURLE_PARTIAL_FILE: {
		int64_t cl = content_length.load();
		if (cl >= 0)
			return io("truncated download: got " + std::to_string(got) + " of " + std::to_string(cl) + " bytes");
		return io("truncated download: got " + std::to_string(got) +
		          " bytes, then the connection closed inside the chunked body (" + detail + ")");
	}
	case CURLE_OPERATION_TIMEDOUT:
		if (strstr(errbuf, "too slow"))
			return Error(CLOUDLET_E_TIMEOUT, shown + ": download stalled: fewer than " +
			                                     std::to_string(kStallBytesPerSecond) + " bytes/s for " +
			                                     std::to_string(opt.stall_timeout_s) + " s after " +
			                                     std::to_string(got) + " bytes");
		return Error(CLOUDLET_E_TIMEOUT, shown + ": timed out: " + detail);
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return io("cannot resolve the host name: " + detail);
	case CURLE_COULDNT_CONNECT:
		return io("cannot connect: " + detail);
	case CURLE_TOO_MANY_REDIRECTS:
		return io("too many redirects (the limit is " + std::to_string(opt.max_redirects) + "): " + detail);
	case CURLE_UNSUPPORTED_PROTOCOL:
		return io(std::string("protocol refused (redirects are followed only to ") +
		          (https ? "https" : "http and https") + "): " + detail);
	case CURLE_FILESIZE_EXCEEDED:
		return io("body too large: the declared Content-Length exceeds the limit of " +
		          std::to_string(opt.max_bytes) + " bytes");
	case CURLE_GOT_NOTHING:
		return io("the server closed the connection without answering: " + detail);
	case CURLE_OUT_OF_MEMORY:
		return Error(CLOUDLET_E_NOMEM, shown + ": out of memory in libcurl");
	default:
		if (is_tls_error(rc))
			return io("TLS failure: " + detail);
		return io("download failed: " + detail);
	}
}

void HttpSource::State::run() noexcept {
	CURLcode result = CURLE_OK;
	bool done = false;
	std::string multi_failure;
	while (!cancel_flag.load()) {
		bool unpause = false;
		{
			std::lock_guard<std::mutex> lk(mu);
			wake_sent = false;
			if (paused && free_space() >= resume_at) {
				paused = false; // the write callback sets it again if it pauses again
				unpause = true;
			}
		}
		if (unpause) {
			// May call on_body() right here with the chunk libcurl kept.
			CURLcode rc = curl_easy_pause(easy, CURLPAUSE_CONT);
			if (rc != CURLE_OK) {
				result = rc;
				done = true;
				break;
			}
		}
		int running = 0;
		CURLMcode mc = curl_multi_perform(multi, &running);
		if (mc != CURLM_OK) {
			multi_failure = curl_multi_strerror(mc);
			break;
		}
		int left = 0;
		while (CURLMsg *m = curl_multi_info_read(multi, &left)) {
			if (m->msg == CURLMSG_DONE) {
				result = m->data.result;
				done = true;
			}
		}
		if (done)
			break;
		// Sleeps until socket activity, a libcurl timer, or curl_multi_wakeup()
		// from read()/cancel(). With the transfer paused its socket is not
		// watched; the 1 s cap is only a safety net.
		mc = curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
		if (mc != CURLM_OK) {
			multi_failure = curl_multi_strerror(mc);
			break;
		}
	}

	std::optional<Error> failure;
	try {
		if (cancel_flag.load())
			failure = Error(CLOUDLET_E_CANCELLED, shown + ": download cancelled");
		else if (!multi_failure.empty())
			failure = io("libcurl failed: " + multi_failure);
		else if (done && (result != CURLE_OK || own_error))
			failure = classify(result);
		else if (done) {
			// A 3xx that was not followed (no Location) with an empty body
			// never reaches on_body(); it is still not the file.
			long code = 0;
			curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
			if (code < 200 || code >= 300)
				failure = io("unexpected " + http_status());
		}
	} catch (...) {
		failure = Error(CLOUDLET_E_NOMEM, "out of memory");
	}
	elapsed_ns_at_end.store(
	    std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
	std::lock_guard<std::mutex> lk(mu);
	finished = true;
	error = std::move(failure);
	cv.notify_all();
}

HttpSource::HttpSource(const std::string &url, const HttpOptions &o) : s_(std::make_unique<State>()) {
	State &s = *s_;
	s.opt = o;
	s.url = url;
	s.shown = redact(url);
	if (!is_url(url))
		fail(CLOUDLET_E_INVALID_ARG, s.shown + ": not an http:// or https:// URL");
	if (o.connect_timeout_s < 0 || o.stall_timeout_s < 0 || o.max_redirects < 0)
		fail(CLOUDLET_E_INVALID_ARG, s.shown + ": negative timeout or redirect limit");
	global_init();

	// Validate with libcurl's own parser, so what we accept is what it fetches.
	CURLU *u = curl_url();
	if (!u)
		fail(CLOUDLET_E_NOMEM, "out of memory");
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, url.c_str(), 0);
	char *scheme = nullptr;
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	std::string sch = scheme ? scheme : "";
	curl_free(scheme);
	curl_url_cleanup(u);
	if (uc != CURLUE_OK)
		fail(CLOUDLET_E_INVALID_ARG, s.shown + ": malformed URL: " + curl_url_strerror(uc));
	if (sch != "http" && sch != "https")
		fail(CLOUDLET_E_INVALID_ARG, s.shown + ": not an http:// or https:// URL");
	s.https = sch == "https";

	s.capacity = std::max(o.buffer_bytes, kMinBuffer);
	s.resume_at = std::max<size_t>(s.capacity / 4, CURL_MAX_WRITE_SIZE);
	s.ring.reset(new uint8_t[s.capacity]);

	s.easy = curl_easy_init();
	s.multi = curl_multi_init();
	if (!s.easy || !s.multi)
		fail(CLOUDLET_E_IO, s.shown + ": cannot create a libcurl handle");

	CURLcode rc = CURLE_OK;
	auto set = [&](CURLoption opt, auto value) {
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(s.easy, opt, value);
	};
	set(CURLOPT_URL, s.url.c_str());
	set(CURLOPT_ERRORBUFFER, s.errbuf);
	set(CURLOPT_NOSIGNAL, 1L);
	// Only http/https, also after redirects; from https never down to http.
	set(CURLOPT_PROTOCOLS_STR, "http,https");
	set(CURLOPT_REDIR_PROTOCOLS_STR, s.https ? "https" : "http,https");
	set(CURLOPT_FOLLOWLOCATION, 1L);
	set(CURLOPT_MAXREDIRS, o.max_redirects);
	set(CURLOPT_SSL_VERIFYPEER, 1L);
	set(CURLOPT_SSL_VERIFYHOST, 2L);
	if (!o.ca_file.empty())
		set(CURLOPT_CAINFO, o.ca_file.c_str());
	set(CURLOPT_CONNECTTIMEOUT, o.connect_timeout_s);
	if (o.stall_timeout_s > 0) {
		set(CURLOPT_LOW_SPEED_LIMIT, kStallBytesPerSecond);
		set(CURLOPT_LOW_SPEED_TIME, o.stall_timeout_s);
	}
	if (o.max_bytes > 0) // 0 would mean "no limit" to libcurl; our own count still refuses any byte
		set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(std::min<uint64_t>(o.max_bytes, INT64_MAX)));
	set(CURLOPT_USERAGENT, kUserAgent);
	// One long sequential download gains nothing from HTTP/2, and HTTP/1.1 is
	// the simplest thing to pause and resume.
	set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
	set(CURLOPT_TCP_KEEPALIVE, 1L);
	// No CURLOPT_ACCEPT_ENCODING: the body is passed on byte for byte.
	set(CURLOPT_HEADERFUNCTION, &on_header);
	set(CURLOPT_HEADERDATA, static_cast<void *>(&s));
	set(CURLOPT_WRITEFUNCTION, &on_body);
	set(CURLOPT_WRITEDATA, static_cast<void *>(&s));
	if (rc != CURLE_OK)
		fail(CLOUDLET_E_IO, s.shown + ": cannot configure libcurl: " + curl_easy_strerror(rc));
	CURLMcode mc = curl_multi_add_handle(s.multi, s.easy);
	if (mc != CURLM_OK)
		fail(CLOUDLET_E_IO, s.shown + ": cannot start the transfer: " + curl_multi_strerror(mc));

	s.start = std::chrono::steady_clock::now();
	s.thread = std::thread([st = s_.get()] { st->run(); });
}

HttpSource::~HttpSource() {
	if (!s_)
		return;
	try {
		cancel();
		if (s_->thread.joinable())
			s_->thread.join();
	} catch (...) {
		// join() only throws for a thread that cannot be joined; nothing to do.
	}
	// ~State removes and frees the handles (closing the connection) now that
	// the transfer thread is gone.
}

size_t HttpSource::read(uint8_t *buf, size_t n) {
	if (n == 0)
		return 0;
	State &s = *s_;
	std::unique_lock<std::mutex> lk(s.mu);
	s.cv.wait(lk, [&] { return s.cancelled || s.size > 0 || s.finished; });
	if (s.cancelled)
		throw Error(CLOUDLET_E_CANCELLED, s.shown + ": download cancelled");
	if (s.size == 0) {
		if (s.error)
			throw Error(*s.error);
		return 0;
	}
	size_t k = std::min(n, s.size);
	size_t first = std::min(k, s.capacity - s.head);
	memcpy(buf, s.ring.get() + s.head, first);
	memcpy(buf + first, s.ring.get(), k - first);
	s.head = (s.head + k) % s.capacity;
	s.size -= k;
	bool wake = s.paused && !s.wake_sent && !s.finished && s.free_space() >= s.resume_at;
	if (wake)
		s.wake_sent = true;
	lk.unlock();
	if (wake)
		s.wake();
	return k;
}

void HttpSource::cancel() {
	State &s = *s_;
	{
		std::lock_guard<std::mutex> lk(s.mu);
		if (s.cancelled)
			return;
		s.cancelled = true;
		s.cancel_flag.store(true);
		s.cv.notify_all();
	}
	s.wake();
}

uint64_t HttpSource::received() const { return s_->received.load(); }

int64_t HttpSource::content_length() const { return s_->content_length.load(); }

double HttpSource::seconds() const {
	int64_t end = s_->elapsed_ns_at_end.load();
	if (end >= 0)
		return static_cast<double>(end) / 1e9;
	return std::chrono::duration<double>(std::chrono::steady_clock::now() - s_->start).count();
}

const std::string &HttpSource::display_url() const { return s_->shown; }

} // namespace cloudlet::net
