#include "net/handoff_messages.h"

#include "util/error.h"
#include "util/json.h"
#include "util/le_bytes.h"

#include <openssl/rand.h>

#include <climits>
#include <cmath>
#include <cstring>
#include <memory>

namespace cloudlet::net {

namespace {

constexpr char kMagic[8] = {'C', 'L', 'T', 'H', 'O', 'F', 'F', '1'};

[[noreturn]] void malformed(const char *what, const std::string &peer, const std::string &why) {
	fail(CLOUDLET_E_CORRUPT, std::string("malformed ") + what + " from " + peer + ": " + why);
}

Payload bytes_of(const std::string &s) { return Payload(s.begin(), s.end()); }

std::string plain(const Json &o) { return json_object_to_json_string_ext(o.get(), JSON_C_TO_STRING_PLAIN); }

Json new_object() { return Json(json_object_new_object()); }

void add(const Json &o, const char *key, json_object *v) { json_object_object_add(o.get(), key, v); }

void add_string(const Json &o, const char *key, const std::string &v) { add(o, key, json_object_new_string(v.c_str())); }

// Exactly one JSON object in `n` bytes, nothing before or after it, no NUL;
// else null.
Json object_in(const uint8_t *p, size_t n) {
	if (n == 0 || n > INT_MAX || memchr(p, 0, n))
		return nullptr;
	std::unique_ptr<json_tokener, decltype(&json_tokener_free)> tok(json_tokener_new(), json_tokener_free);
	Json doc(json_tokener_parse_ex(tok.get(), reinterpret_cast<const char *>(p), static_cast<int>(n)));
	if (!doc || json_tokener_get_error(tok.get()) != json_tokener_success ||
	    json_tokener_get_parse_end(tok.get()) != n || !json_object_is_type(doc.get(), json_type_object))
		return nullptr;
	return doc;
}

Json parse_object(const uint8_t *p, size_t n, const char *what, const std::string &peer) {
	Json doc = object_in(p, n);
	if (!doc)
		malformed(what, peer, "not one JSON object");
	return doc;
}

Json parse_object(const Payload &p, const char *what, const std::string &peer) {
	return parse_object(p.data(), p.size(), what, peer);
}

// Decoding the fields of one message's JSON object.
struct Fields {
	json_object *o;
	const char *what;
	const std::string &peer;

	json_object *get(const char *key, json_type type, const char *type_name, bool required) const {
		json_object *v = nullptr;
		if (!json_object_object_get_ex(o, key, &v)) {
			if (required)
				malformed(what, peer, std::string("lacks '") + key + "'");
			return nullptr;
		}
		bool number = type == json_type_double && json_object_is_type(v, json_type_int);
		if (!v || (!json_object_is_type(v, type) && !number))
			malformed(what, peer, std::string("'") + key + "' is not " + type_name);
		return v;
	}
	std::string text(json_object *v, const char *key) const {
		std::string s(json_object_get_string(v), static_cast<size_t>(json_object_get_string_len(v)));
		if (s.find('\0') != std::string::npos)
			malformed(what, peer, std::string("'") + key + "' holds a NUL");
		return s;
	}
	std::string string(const char *key, bool required = true) const {
		json_object *v = get(key, json_type_string, "a string", required);
		return v ? text(v, key) : "";
	}
	uint64_t count(const char *key) const {
		json_object *v = get(key, json_type_int, "a count", true);
		if (json_object_get_int64(v) < 0)
			malformed(what, peer, std::string("'") + key + "' is negative");
		return json_object_get_uint64(v);
	}
	double seconds(const char *key) const {
		double d = json_object_get_double(get(key, json_type_double, "a number", true));
		if (!std::isfinite(d) || d < 0)
			malformed(what, peer, std::string("'") + key + "' is not a duration");
		return d;
	}
	std::vector<std::string> strings(const char *key) const {
		json_object *a = get(key, json_type_array, "an array", true);
		std::vector<std::string> out;
		for (size_t i = 0; i < json_object_array_length(a); i++) {
			json_object *v = json_object_array_get_idx(a, i);
			if (!json_object_is_type(v, json_type_string))
				malformed(what, peer, std::string("'") + key + "' holds something other than strings");
			out.push_back(text(v, key));
		}
		return out;
	}
};

} // namespace

Payload Greeting::encode() const {
	Payload p(kBytes);
	memcpy(p.data(), kMagic, sizeof kMagic);
	le::put32(p.data() + 8, version);
	memcpy(p.data() + 12, nonce.data(), kNonceBytes);
	return p;
}

Greeting Greeting::decode(const Payload &p, const char *what, const std::string &peer) {
	if (p.size() != kBytes)
		malformed(what, peer, std::to_string(p.size()) + " bytes, not " + std::to_string(kBytes));
	if (memcmp(p.data(), kMagic, sizeof kMagic) != 0)
		malformed(what, peer, "not the handoff protocol's magic");
	Greeting g;
	g.version = le::get32(p.data() + 8);
	memcpy(g.nonce.data(), p.data() + 12, kNonceBytes);
	return g;
}

Payload Offer::encode() const {
	Json o = new_object();
	add_string(o, "name", name);
	add_string(o, "header", header);
	return bytes_of(plain(o));
}

Offer Offer::decode(const Payload &p, const std::string &peer) {
	Json o = parse_object(p, "OFFER", peer);
	Fields f{o.get(), "OFFER", peer};
	return Offer{f.string("name"), f.string("header")};
}

namespace {

bool is_session_id(const std::string &s) {
	return s.size() == Accept::kSessionChars &&
	       s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

} // namespace

std::string new_session_id() {
	uint8_t b[Accept::kSessionChars / 2];
	if (RAND_bytes(b, sizeof b) != 1)
		fail(CLOUDLET_E_INTERNAL, "no random bytes for a handoff session");
	static const char hex[] = "0123456789abcdef";
	std::string s;
	for (uint8_t c : b) {
		s += hex[c >> 4];
		s += hex[c & 15];
	}
	return s;
}

Payload Accept::encode() const {
	Json o = new_object();
	if (resumable()) {
		add_string(o, "session", session);
		add(o, "resume_seconds", json_object_new_double(resume_seconds));
	}
	return bytes_of(plain(o));
}

Accept Accept::decode(const Payload &p, const std::string &peer) {
	Json o = parse_object(p, "ACCEPT", peer);
	Fields f{o.get(), "ACCEPT", peer};
	Accept a;
	a.session = f.string("session", false);
	if (a.session.empty())
		return a;
	if (!is_session_id(a.session))
		malformed("ACCEPT", peer, "'session' is not 32 hex digits");
	a.resume_seconds = f.seconds("resume_seconds");
	if (a.resume_seconds > 24 * 3600)
		malformed("ACCEPT", peer, "'resume_seconds' is more than a day");
	return a;
}

Payload Resume::encode() const {
	Json o = new_object();
	add_string(o, "session", session);
	add(o, "acked", json_object_new_uint64(acked));
	return bytes_of(plain(o));
}

Resume Resume::decode(const Payload &p, const std::string &peer) {
	Json o = parse_object(p, "RESUME", peer);
	Fields f{o.get(), "RESUME", peer};
	Resume r;
	r.session = f.string("session");
	if (!is_session_id(r.session))
		malformed("RESUME", peer, "'session' is not 32 hex digits");
	r.acked = f.count("acked");
	return r;
}

Payload Resumed::encode() const {
	Json o = new_object();
	add(o, "applied", json_object_new_uint64(applied));
	return bytes_of(plain(o));
}

Resumed Resumed::decode(const Payload &p, const std::string &peer) {
	Json o = parse_object(p, "RESUMED", peer);
	Fields f{o.get(), "RESUMED", peer};
	return Resumed{f.count("applied")};
}

Payload Stop::encode() const {
	Json o = new_object();
	add(o, "status", json_object_new_int(status));
	add_string(o, "message", message);
	return bytes_of(plain(o));
}

Stop Stop::decode(const Payload &p) {
	Stop s;
	Json o = object_in(p.data(), p.size());
	json_object *v = nullptr;
	if (!o)
		return s; // no reason given
	if (json_object_object_get_ex(o.get(), "status", &v) && json_object_is_type(v, json_type_int)) {
		int64_t st = json_object_get_int64(v);
		s.status = st < 0 && st >= CLOUDLET_E_INTERNAL ? static_cast<int>(st) : CLOUDLET_E_IO;
	}
	if (json_object_object_get_ex(o.get(), "message", &v) && json_object_is_type(v, json_type_string))
		s.message = json_object_get_string(v);
	return s;
}

Payload Ack::encode() const {
	Payload p(kBytes);
	le::put64(p.data(), frames);
	le::put64(p.data() + 8, raw_bytes);
	return p;
}

Ack Ack::decode(const Payload &p, const std::string &peer) {
	if (p.size() != kBytes)
		malformed("ACK", peer, std::to_string(p.size()) + " bytes, not " + std::to_string(kBytes));
	return Ack{le::get64(p.data()), le::get64(p.data() + 8)};
}

Payload Final::encode() const {
	Json o = new_object();
	add(o, "memory_items", json_object_new_uint64(memory_items));
	add(o, "disk_items", json_object_new_uint64(disk_items));
	add(o, "stored_items", json_object_new_uint64(stored_items));
	std::string j = plain(o);
	Payload p(4 + j.size() + device_state.size());
	le::put32(p.data(), static_cast<uint32_t>(j.size()));
	memcpy(p.data() + 4, j.data(), j.size());
	if (!device_state.empty())
		memcpy(p.data() + 4 + j.size(), device_state.data(), device_state.size());
	return p;
}

Final Final::decode(const Payload &p, const std::string &peer) {
	if (p.size() < 4)
		malformed("FINAL", peer, "shorter than its JSON length");
	uint32_t jl = le::get32(p.data());
	if (jl > p.size() - 4)
		malformed("FINAL", peer, "JSON of " + std::to_string(jl) + " bytes in " + std::to_string(p.size() - 4));
	Json o = parse_object(p.data() + 4, jl, "FINAL", peer);
	Fields f{o.get(), "FINAL", peer};
	Final m;
	m.memory_items = f.count("memory_items");
	m.disk_items = f.count("disk_items");
	m.stored_items = f.count("stored_items");
	m.device_state.assign(p.begin() + 4 + jl, p.end());
	return m;
}

Payload Ready::encode() const {
	Json o = new_object();
	add_string(o, "name", name);
	add_string(o, "uuid", uuid);
	return bytes_of(plain(o));
}

Ready Ready::decode(const Payload &p, const std::string &peer) {
	Json o = parse_object(p, "READY", peer);
	Fields f{o.get(), "READY", peer};
	return Ready{f.string("name"), f.string("uuid")};
}

Go Go::decode(const Payload &p, const std::string &peer) {
	if (!p.empty())
		malformed("GO", peer, std::to_string(p.size()) + " bytes where GO has none");
	return {};
}

Payload Running::encode() const {
	Json o = new_object();
	add_string(o, "name", name);
	add_string(o, "uuid", uuid);
	json_object *a = json_object_new_array();
	add(o, "macs", a); // owned by `o` from here
	for (const auto &m : macs)
		json_object_array_add(a, json_object_new_string(m.c_str()));
	add(o, "nic_seconds", json_object_new_double(nic_seconds));
	if (!nic_error.empty())
		add_string(o, "nic_error", nic_error);
	return bytes_of(plain(o));
}

Running Running::decode(const Payload &p, const std::string &peer) {
	Json o = parse_object(p, "RUNNING", peer);
	Fields f{o.get(), "RUNNING", peer};
	Running r;
	r.name = f.string("name");
	r.uuid = f.string("uuid");
	r.macs = f.strings("macs");
	r.nic_seconds = f.seconds("nic_seconds");
	r.nic_error = f.string("nic_error", false);
	return r;
}

} // namespace cloudlet::net
