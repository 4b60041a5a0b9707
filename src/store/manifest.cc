#include "store/manifest.h"

#include "chunk/content_digest.h"
#include "util/error.h"
#include "util/json.h"

#include <json-c/json.h>

#include <memory>

namespace cloudlet::store {

namespace {

std::string get_string(json_object *o, const char *key, const std::string &what) {
	json_object *v = nullptr;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		fail(CLOUDLET_E_CORRUPT, what + ": '" + key + "' is missing or not a string");
	return json_object_get_string(v);
}

uint64_t get_u64(json_object *o, const char *key, const std::string &what) {
	json_object *v = nullptr;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		fail(CLOUDLET_E_CORRUPT, what + ": '" + key + "' is missing or not a non-negative integer");
	return static_cast<uint64_t>(json_object_get_int64(v));
}

bool is_hex64(const std::string &s) {
	if (s.size() != 64)
		return false;
	for (char c : s)
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	return true;
}

} // namespace

bool safe_file_name(const std::string &name) {
	if (name.empty() || name.size() > 128 || name == "." || name == "..")
		return false;
	for (char c : name)
		if (!(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_'))
			return false;
	return true;
}

std::string Manifest::to_json() const {
	Json o(json_object_new_object());
	json_object_object_add(o.get(), "format", json_object_new_int(static_cast<int>(format)));
	json_object_object_add(o.get(), "kind", json_object_new_string("libcloudlet-base"));
	json_object_object_add(o.get(), "digest", json_object_new_string(chunk::kDigestAlgorithm));
	json_object_object_add(o.get(), "virt_type", json_object_new_string(virt_type.c_str()));
	json_object_object_add(o.get(), "machine", json_object_new_string(machine.c_str()));
	json_object_object_add(o.get(), "cpu_model", json_object_new_string(cpu_model.c_str()));
	json_object_object_add(o.get(), "memory_bytes", json_object_new_int64(static_cast<int64_t>(memory_bytes)));
	json_object *list = json_object_new_array();
	for (const auto &p : parts) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "file", json_object_new_string(p.file.c_str()));
		json_object_object_add(j, "role", json_object_new_string(p.role.c_str()));
		if (!p.target.empty())
			json_object_object_add(j, "target", json_object_new_string(p.target.c_str()));
		json_object_object_add(j, "size", json_object_new_int64(static_cast<int64_t>(p.size)));
		json_object_object_add(j, "digest", json_object_new_string(p.digest.c_str()));
		json_object_array_add(list, j);
	}
	json_object_object_add(o.get(), "parts", list);
	return std::string(json_object_to_json_string_ext(o.get(), JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED)) +
	       "\n";
}

Manifest Manifest::parse(const std::string &text, const std::string &what) {
	if (text.size() > (1u << 20))
		fail(CLOUDLET_E_CORRUPT, what + ": manifest larger than 1 MiB");
	json_tokener *tok = json_tokener_new();
	Json doc(json_tokener_parse_ex(tok, text.c_str(), static_cast<int>(text.size())));
	json_tokener_error jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!doc || jerr != json_tokener_success || !json_object_is_type(doc.get(), json_type_object))
		fail(CLOUDLET_E_CORRUPT, what + ": manifest is not a JSON object");
	Manifest m;
	uint64_t f = get_u64(doc.get(), "format", what);
	if (f < kManifestFormat)
		fail(CLOUDLET_E_UNSUPPORTED,
		     what + ": manifest format " + std::to_string(f) + " is from an older libcloudlet (its parts carry " +
		         "plain SHA-256 digests; this library reads format " + std::to_string(kManifestFormat) +
		         ", content digests): the base must be re-created with 'cloudlet base create'");
	if (f != kManifestFormat)
		fail(CLOUDLET_E_UNSUPPORTED, what + ": manifest format " + std::to_string(f) + " (this library reads " +
		                                 std::to_string(kManifestFormat) + ")");
	if (get_string(doc.get(), "kind", what) != "libcloudlet-base")
		fail(CLOUDLET_E_CORRUPT, what + ": not a libcloudlet base manifest");
	if (std::string d = get_string(doc.get(), "digest", what); d != chunk::kDigestAlgorithm)
		fail(CLOUDLET_E_UNSUPPORTED, what + ": part digest '" + d + "' (this library computes '" +
		                                 chunk::kDigestAlgorithm + "')");
	m.virt_type = get_string(doc.get(), "virt_type", what);
	m.machine = get_string(doc.get(), "machine", what);
	m.cpu_model = get_string(doc.get(), "cpu_model", what);
	m.memory_bytes = get_u64(doc.get(), "memory_bytes", what);
	json_object *list = nullptr;
	if (!json_object_object_get_ex(doc.get(), "parts", &list) || !json_object_is_type(list, json_type_array))
		fail(CLOUDLET_E_CORRUPT, what + ": 'parts' is missing");
	size_t n = json_object_array_length(list);
	if (n == 0 || n > 256)
		fail(CLOUDLET_E_CORRUPT, what + ": " + std::to_string(n) + " parts");
	for (size_t i = 0; i < n; i++) {
		json_object *j = json_object_array_get_idx(list, i);
		std::string pw = what + ": part " + std::to_string(i);
		Part p;
		p.file = get_string(j, "file", pw);
		p.role = get_string(j, "role", pw);
		json_object *t = nullptr;
		if (json_object_object_get_ex(j, "target", &t) && json_object_is_type(t, json_type_string))
			p.target = json_object_get_string(t);
		p.size = get_u64(j, "size", pw);
		p.digest = get_string(j, "digest", pw);
		if (!safe_file_name(p.file) || p.file == "manifest.json")
			fail(CLOUDLET_E_CORRUPT, pw + ": file name '" + p.file + "' is not allowed");
		if (!is_hex64(p.digest))
			fail(CLOUDLET_E_CORRUPT, pw + ": digest is not 64 hex digits");
		for (const auto &q : m.parts)
			if (q.file == p.file)
				fail(CLOUDLET_E_CORRUPT, pw + ": file '" + p.file + "' listed twice");
		m.parts.push_back(p);
	}
	for (const char *role : {"memory", "memory-index", "domain-xml"})
		if (!m.find(role))
			fail(CLOUDLET_E_CORRUPT, what + ": no '" + role + "' part");
	return m;
}

const Part *Manifest::find(const std::string &role, size_t nth) const {
	for (const auto &p : parts)
		if (p.role == role && nth-- == 0)
			return &p;
	return nullptr;
}

uint64_t Manifest::total_bytes() const {
	uint64_t t = 0;
	for (const auto &p : parts)
		t += p.size;
	return t;
}

} // namespace cloudlet::store
