#include "net/secure_link.h"

#include "util/error.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

namespace cloudlet::net {

namespace {

constexpr size_t kMinToken = 32;
// The PSK's identity. A destination accepts no other; it names the
// derivation so that a later one can coexist.
constexpr char kPskIdentity[] = "cloudlet-handoff-psk-v2";
constexpr char kPskLabel[] = "cloudlet-handoff-v2 tls13 external psk";
constexpr char kExporterLabel[] = "EXPORTER-cloudlet-handoff-frames";

using Deadline = std::chrono::steady_clock::time_point;

Deadline deadline_in(int ms) { return std::chrono::steady_clock::now() + std::chrono::milliseconds(ms < 0 ? 0 : ms); }

// Milliseconds left, at least 0; -1 stays "forever".
int left_ms(Deadline d, bool forever) {
	if (forever)
		return -1;
	auto left = std::chrono::duration_cast<std::chrono::milliseconds>(d - std::chrono::steady_clock::now()).count();
	return left > 0 ? static_cast<int>(left) : 0;
}

// Waits for `events` on fd; false at the deadline.
bool wait_for(int fd, short events, Deadline d, bool forever) {
	for (;;) {
		pollfd p{fd, events, 0};
		int ms = left_ms(d, forever);
		if (ms == 0 && !forever)
			return false;
		int r = poll(&p, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		return r != 0;
	}
}

// OpenSSL's error queue of this thread as one line (and emptied).
std::string ssl_errors() {
	std::string out;
	while (unsigned long e = ERR_get_error()) {
		char b[256];
		ERR_error_string_n(e, b, sizeof b);
		const char *reason = ERR_reason_error_string(e);
		if (!out.empty())
			out += "; ";
		out += reason ? reason : b;
	}
	return out.empty() ? "no detail from OpenSSL" : out;
}

// ---- plaintext ----------------------------------------------------------

class PlainLink : public Link {
public:
	PlainLink(int fd, std::string peer, std::string token, std::shared_ptr<std::atomic<uint64_t>> also)
	    : fd_(fd), peer_(std::move(peer)), token_(std::move(token)), also_(std::move(also)) {}
	~PlainLink() override { OPENSSL_cleanse(token_.data(), token_.size()); }

	size_t read_some(uint8_t *p, size_t n, int timeout_ms) override {
		Deadline d = deadline_in(timeout_ms);
		for (;;) {
			if (timeout_ms >= 0 && !wait_for(fd_, POLLIN, d, false))
				fail(CLOUDLET_E_TIMEOUT, "nothing from " + peer_ + " for " + std::to_string(timeout_ms) + " ms");
			ssize_t k = recv(fd_, p, n, timeout_ms >= 0 ? MSG_DONTWAIT : 0);
			if (k < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (k == 0)
				fail(CLOUDLET_E_IO, peer_ + " closed the connection");
			if (k < 0)
				fail(CLOUDLET_E_IO, "connection to " + peer_ + " failed: " + errno_message("recv", errno));
			received_ += static_cast<uint64_t>(k);
			if (also_)
				*also_ += static_cast<uint64_t>(k);
			return static_cast<size_t>(k);
		}
	}
	void write_all(const uint8_t *p, size_t n) override {
		while (n) {
			ssize_t k = ::send(fd_, p, n, MSG_NOSIGNAL);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0 && errno == EAGAIN) {
				wait_for(fd_, POLLOUT, {}, true);
				continue;
			}
			if (k <= 0)
				fail(CLOUDLET_E_IO, "connection to " + peer_ + " failed while sending: " + errno_message("send", errno));
			p += k;
			n -= static_cast<size_t>(k);
			sent_ += static_cast<uint64_t>(k);
		}
	}
	void shutdown() override { ::shutdown(fd_, SHUT_RDWR); }
	std::string frame_secret() const override { return token_; }
	std::string description() const override { return "plaintext (unsafe)"; }
	uint64_t wire_bytes_sent() const override { return sent_; }
	uint64_t wire_bytes_received() const override { return received_; }

private:
	int fd_;
	std::string peer_, token_;
	std::atomic<uint64_t> sent_{0}, received_{0};
	std::shared_ptr<std::atomic<uint64_t>> also_;
};

// ---- TLS ----------------------------------------------------------------

// A BIO over the socket that sends with MSG_NOSIGNAL (a peer that closed
// must not raise SIGPIPE in the caller's process) and counts the bytes.
struct SocketCounters {
	int fd;
	std::atomic<uint64_t> sent{0}, received{0};
	std::shared_ptr<std::atomic<uint64_t>> also_received;
};

int sock_write(BIO *b, const char *in, size_t n, size_t *done) {
	auto *c = static_cast<SocketCounters *>(BIO_get_data(b));
	BIO_clear_retry_flags(b);
	ssize_t k;
	do
		k = ::send(c->fd, in, n, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	if (k < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_write(b);
		return 0;
	}
	c->sent += static_cast<uint64_t>(k);
	*done = static_cast<size_t>(k);
	return 1;
}

int sock_read(BIO *b, char *out, size_t n, size_t *done) {
	auto *c = static_cast<SocketCounters *>(BIO_get_data(b));
	BIO_clear_retry_flags(b);
	ssize_t k;
	do
		k = recv(c->fd, out, n, 0);
	while (k < 0 && errno == EINTR);
	if (k < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_read(b);
		return 0;
	}
	if (k == 0)
		BIO_set_flags(b, BIO_FLAGS_IN_EOF);
	c->received += static_cast<uint64_t>(k);
	if (c->also_received)
		*c->also_received += static_cast<uint64_t>(k);
	*done = static_cast<size_t>(k);
	return k > 0;
}

long sock_ctrl(BIO *b, int cmd, long, void *) {
	if (cmd == BIO_CTRL_FLUSH)
		return 1;
	if (cmd == BIO_CTRL_EOF)
		return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
	return 0;
}

BIO_METHOD *socket_method() {
	static BIO_METHOD *m = [] {
		BIO_METHOD *bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "cloudlet socket");
		if (bm) {
			BIO_meth_set_write_ex(bm, sock_write);
			BIO_meth_set_read_ex(bm, sock_read);
			BIO_meth_set_ctrl(bm, sock_ctrl);
			BIO_meth_set_create(bm, [](BIO *b) {
				BIO_set_init(b, 1);
				return 1;
			});
		}
		return bm;
	}();
	if (!m)
		fail(CLOUDLET_E_NOMEM, "cannot create an OpenSSL BIO method");
	return m;
}

class TlsLink : public Link {
public:
	TlsLink(SSL *ssl, std::unique_ptr<SocketCounters> c, std::string peer, Security mode)
	    : ssl_(ssl), c_(std::move(c)), peer_(std::move(peer)), mode_(mode) {}
	~TlsLink() override { SSL_free(ssl_); }

	size_t read_some(uint8_t *p, size_t n, int timeout_ms) override {
		Deadline d = deadline_in(timeout_ms);
		for (;;) {
			std::unique_lock lock(mu_);
			ERR_clear_error();
			size_t k = 0;
			int r = SSL_read_ex(ssl_, p, n, &k);
			if (r == 1)
				return k;
			int e = SSL_get_error(ssl_, r);
			// A connection that ends without TLS's close_notify (a cut
			// link, a killed peer) is a lost connection, not bad data:
			// the frame layer's lengths catch any truncation.
			bool cut = e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
			std::string why = e == SSL_ERROR_SSL ? ssl_errors() : "";
			lock.unlock();
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				if (!wait_for(c_->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, d, timeout_ms < 0))
					fail(CLOUDLET_E_TIMEOUT, "nothing from " + peer_ + " for " + std::to_string(timeout_ms) + " ms");
				continue;
			}
			if (cut)
				fail(CLOUDLET_E_IO, peer_ + " closed the connection without ending TLS (the link was cut)");
			if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
				fail(CLOUDLET_E_IO, peer_ + " closed the connection");
			if (e == SSL_ERROR_SSL)
				fail(CLOUDLET_E_CORRUPT, "TLS from " + peer_ + " failed: " + why);
			fail(CLOUDLET_E_IO, "connection to " + peer_ + " failed: " + errno_message("recv", errno));
		}
	}
	void write_all(const uint8_t *p, size_t n) override {
		while (n) {
			std::unique_lock lock(mu_);
			ERR_clear_error();
			size_t k = 0;
			int r = SSL_write_ex(ssl_, p, n, &k);
			if (r == 1) {
				p += k;
				n -= k;
				continue;
			}
			int e = SSL_get_error(ssl_, r);
			std::string why = e == SSL_ERROR_SSL ? ssl_errors() : errno_message("send", errno);
			lock.unlock();
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				wait_for(c_->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, {}, true);
				continue;
			}
			fail(CLOUDLET_E_IO, "connection to " + peer_ + " failed while sending: " + why);
		}
	}
	void shutdown() override { ::shutdown(c_->fd, SHUT_RDWR); }
	std::string frame_secret() const override {
		std::string s(32, '\0');
		std::lock_guard lock(mu_);
		if (SSL_export_keying_material(ssl_, reinterpret_cast<unsigned char *>(s.data()), s.size(), kExporterLabel,
		                               sizeof kExporterLabel - 1, nullptr, 0, 0) != 1)
			fail(CLOUDLET_E_INTERNAL, "TLS keying material export failed: " + ssl_errors());
		return s;
	}
	std::string description() const override {
		std::lock_guard lock(mu_);
		return std::string(SSL_get_version(ssl_)) + " " + SSL_get_cipher_name(ssl_) +
		       (mode_ == Security::TlsPsk ? " (PSK from the token)" : " (X.509)");
	}
	uint64_t wire_bytes_sent() const override { return c_->sent; }
	uint64_t wire_bytes_received() const override { return c_->received; }

private:
	mutable std::mutex mu_; // OpenSSL's SSL object is not safe for concurrent calls
	SSL *ssl_;
	std::unique_ptr<SocketCounters> c_;
	std::string peer_;
	Security mode_;
};

std::string x509_file(const std::string &dir, const char *name, bool required) {
	std::string path = dir + "/" + name;
	struct stat st {};
	if (stat(path.c_str(), &st) != 0) {
		if (!required && errno == ENOENT)
			return "";
		fail_errno("TLS certificate directory '" + dir + "': cannot use " + name, errno);
	}
	if (!S_ISREG(st.st_mode))
		fail(CLOUDLET_E_INVALID_ARG, "TLS certificate directory '" + dir + "': " + name + " is not a file");
	return path;
}

// The X.509 files a role loads from `dir`, as (name, required).
std::vector<std::pair<const char *, bool>> x509_files(bool server) {
	return {{"ca-cert.pem", true},
	        {"ca-crl.pem", false},
	        {server ? "server-cert.pem" : "client-cert.pem", true},
	        {server ? "server-key.pem" : "client-key.pem", true}};
}

// What identifies the files' current content without reading them.
std::string x509_stamp(const std::string &dir, bool server) {
	std::string stamp;
	for (const auto &[name, required] : x509_files(server)) {
		(void)required;
		struct stat st {};
		if (stat((dir + "/" + name).c_str(), &st) != 0) {
			stamp += "-;";
			continue;
		}
		stamp += std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
		         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ";";
	}
	return stamp;
}

} // namespace

const char *security_name(Security s) {
	switch (s) {
	case Security::TlsPsk: return "tls-psk";
	case Security::TlsX509: return "tls-x509";
	case Security::PlaintextUnsafe: return "plaintext-unsafe";
	}
	return "unknown";
}

struct LinkSetup::Tls {
	SSL_CTX *ctx = nullptr;
	std::array<unsigned char, 32> psk{};
	~Tls() {
		OPENSSL_cleanse(psk.data(), psk.size());
		SSL_CTX_free(ctx);
	}

	static int ex_index() {
		static int i = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
		return i;
	}
	static const Tls *of(SSL *ssl) {
		return static_cast<const Tls *>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_index()));
	}
	// A session holding the PSK, for TLS_AES_128_GCM_SHA256 (the PSK's
	// hash is SHA-256; the suites negotiated with it must share it).
	SSL_SESSION *psk_session(SSL *ssl) const {
		static const unsigned char aes128gcm[2] = {0x13, 0x01};
		const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes128gcm);
		SSL_SESSION *s = cipher ? SSL_SESSION_new() : nullptr;
		if (s && SSL_SESSION_set1_master_key(s, psk.data(), psk.size()) == 1 && SSL_SESSION_set_cipher(s, cipher) == 1 &&
		    SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) == 1)
			return s;
		SSL_SESSION_free(s);
		return nullptr;
	}
	static int use_psk(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen, SSL_SESSION **sess) {
		*sess = nullptr;
		if (md && md != EVP_sha256())
			return 1; // no PSK for another hash (a HelloRetryRequest's suite)
		*sess = of(ssl)->psk_session(ssl);
		*id = reinterpret_cast<const unsigned char *>(kPskIdentity);
		*idlen = sizeof kPskIdentity - 1;
		return *sess ? 1 : 0;
	}
	static int find_psk(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess) {
		*sess = nullptr;
		if (idlen != sizeof kPskIdentity - 1 || memcmp(id, kPskIdentity, idlen) != 0)
			return 1; // not ours: the handshake fails for want of a PSK
		*sess = of(ssl)->psk_session(ssl);
		return *sess ? 1 : 0;
	}
};

LinkSetup::LinkSetup(const SecurityConfig &config, Role role) : mode_(config.mode), role_(role) {
	if (mode_ != Security::TlsX509) {
		if (config.token.size() < kMinToken)
			fail(CLOUDLET_E_INVALID_ARG, "a handoff token needs at least 32 bytes");
		token_ = config.token;
	}
	if (mode_ == Security::PlaintextUnsafe)
		return;
	tls_ = std::make_unique<Tls>();
	bool server = role == Role::Server;
	tls_->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	SSL_CTX *ctx = tls_->ctx;
	if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") != 1)
		fail(CLOUDLET_E_INTERNAL, "cannot set up TLS 1.3: " + ssl_errors());
	SSL_CTX_set_ex_data(ctx, Tls::ex_index(), tls_.get());
	SSL_CTX_set_num_tickets(ctx, 0); // no resumption tickets: every connection authenticates afresh
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (mode_ == Security::TlsPsk) {
		unsigned len = 0;
		if (!HMAC(EVP_sha256(), token_.data(), static_cast<int>(token_.size()),
		          reinterpret_cast<const unsigned char *>(kPskLabel), sizeof kPskLabel - 1, tls_->psk.data(), &len) ||
		    len != tls_->psk.size())
			fail(CLOUDLET_E_INTERNAL, "HMAC-SHA256 failed");
		if (server) {
			SSL_CTX_set_psk_find_session_callback(ctx, Tls::find_psk);
		} else {
			SSL_CTX_set_psk_use_session_callback(ctx, Tls::use_psk);
			// A server that answers with a certificate instead of the PSK
			// fails verification against an empty trust store.
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
		}
		return;
	}
	const std::string &dir = config.x509_dir;
	if (dir.empty())
		fail(CLOUDLET_E_INVALID_ARG, "X.509 handoff needs a certificate directory");
	x509_dir_ = dir;
	x509_stamp_ = x509_stamp(dir, server); // before the reads: a change meanwhile shows at the next check
	auto files = x509_files(server);
	std::string ca = x509_file(dir, files[0].first, files[0].second), crl = x509_file(dir, files[1].first, files[1].second);
	std::string cert = x509_file(dir, files[2].first, files[2].second);
	std::string key = x509_file(dir, files[3].first, files[3].second);
	ERR_clear_error();
	if (SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1)
		fail(CLOUDLET_E_INVALID_ARG, "cannot load the CA certificate '" + ca + "': " + ssl_errors());
	if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1)
		fail(CLOUDLET_E_INVALID_ARG, "cannot load the certificate '" + cert + "': " + ssl_errors());
	if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1)
		fail(CLOUDLET_E_INVALID_ARG, "cannot load the private key '" + key + "': " + ssl_errors());
	if (SSL_CTX_check_private_key(ctx) != 1)
		fail(CLOUDLET_E_INVALID_ARG, "the private key '" + key + "' does not match '" + cert + "'");
	if (!crl.empty()) {
		X509_STORE *store = SSL_CTX_get_cert_store(ctx);
		if (X509_STORE_load_file(store, crl.c_str()) != 1)
			fail(CLOUDLET_E_INVALID_ARG, "cannot load the CRL '" + crl + "': " + ssl_errors());
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	}
	// Mutual: the destination demands the source's certificate.
	SSL_CTX_set_verify(ctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER, nullptr);
}

LinkSetup::~LinkSetup() { OPENSSL_cleanse(token_.data(), token_.size()); }

bool LinkSetup::current(const SecurityConfig &config) const {
	if (config.mode != mode_)
		return false;
	if (mode_ != Security::TlsX509)
		return config.token == token_;
	return config.x509_dir == x509_dir_ && x509_stamp(x509_dir_, role_ == Role::Server) == x509_stamp_;
}

std::unique_ptr<Link> LinkSetup::open(int fd, const std::string &peer, const std::string &host, int deadline_ms,
                                      std::shared_ptr<std::atomic<uint64_t>> received) const {
	if (mode_ == Security::PlaintextUnsafe)
		return std::make_unique<PlainLink>(fd, peer, token_, received);
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
		fail_errno("cannot make the connection to " + peer + " non-blocking", errno);
	auto counters = std::make_unique<SocketCounters>();
	counters->fd = fd;
	counters->also_received = std::move(received);
	SSL *ssl = SSL_new(tls_->ctx);
	BIO *bio = ssl ? BIO_new(socket_method()) : nullptr;
	if (!bio) {
		SSL_free(ssl);
		fail(CLOUDLET_E_NOMEM, "cannot create a TLS connection: " + ssl_errors());
	}
	BIO_set_data(bio, counters.get());
	SSL_set_bio(ssl, bio, bio);
	auto link = std::make_unique<TlsLink>(ssl, std::move(counters), peer, mode_);
	if (role_ == Role::Client) {
		SSL_set_connect_state(ssl);
		if (mode_ == Security::TlsX509 && !host.empty()) {
			in6_addr a6;
			in_addr a4;
			bool ip = inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
			X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
			if (ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1 : SSL_set1_host(ssl, host.c_str()) != 1)
				fail(CLOUDLET_E_INVALID_ARG, "cannot verify certificates for '" + host + "'");
			if (!ip)
				SSL_set_tlsext_host_name(ssl, host.c_str());
		}
	} else {
		SSL_set_accept_state(ssl);
	}
	Deadline d = deadline_in(deadline_ms);
	for (;;) {
		ERR_clear_error();
		int r = SSL_do_handshake(ssl);
		if (r == 1)
			break;
		int e = SSL_get_error(ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (!wait_for(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, d, false))
				fail(CLOUDLET_E_TIMEOUT, "TLS handshake with " + peer + " did not complete within " +
				                             std::to_string(deadline_ms) + " ms");
			continue;
		}
		std::string why = e == SSL_ERROR_SSL ? ssl_errors() : "the connection closed";
		long v = SSL_get_verify_result(ssl);
		if (v != X509_V_OK)
			why += " (certificate: " + std::string(X509_verify_cert_error_string(v)) + ")";
		const char *hint = mode_ == Security::TlsPsk
		                       ? "; both cloudlets need the same token file, and TLS (not --insecure-plaintext)"
		                       : "; both cloudlets need certificates of the same CA, and TLS";
		fail(CLOUDLET_E_PERMISSION, "TLS handshake with " + peer + " failed: " + why + hint);
	}
	// Under PSK the handshake must have used it: that is what proves the
	// peer holds the token (a certificate alone proves nothing here).
	if (mode_ == Security::TlsPsk && SSL_session_reused(ssl) != 1)
		fail(CLOUDLET_E_PERMISSION, "TLS handshake with " + peer + " did not use the token's PSK; both cloudlets need "
		                            "the same token file, and TLS (not --insecure-plaintext)");
	return link;
}

} // namespace cloudlet::net
