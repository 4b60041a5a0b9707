#include "qmp_message.h"

#include "util/error.h"

#include <algorithm>
#include <cstring>

namespace cloudlet::qemu {

std::string qmp_command(const std::string &command, json_object *arguments) {
	JsonPtr o(json_object_new_object());
	json_object_object_add(o.get(), "execute", json_object_new_string(command.c_str()));
	if (arguments)
		json_object_object_add(o.get(), "arguments", json_object_get(arguments));
	return json_object_to_json_string_ext(o.get(), JSON_C_TO_STRING_PLAIN);
}

JsonPtr qmp_parse_reply(const std::string &reply, const std::string &command) {
	if (reply.size() > (64u << 20))
		throw Error(CLOUDLET_E_CORRUPT, "QMP reply to '" + command + "' is larger than 64 MiB");
	json_tokener *tok = json_tokener_new();
	JsonPtr doc(json_tokener_parse_ex(tok, reply.c_str(), static_cast<int>(reply.size())));
	json_tokener_error jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!doc || jerr != json_tokener_success || !json_object_is_type(doc.get(), json_type_object))
		throw Error(CLOUDLET_E_CORRUPT, "QMP reply to '" + command + "' is not a JSON object: " +
		                                    reply.substr(0, 200));
	json_object *err = nullptr, *ret = nullptr;
	if (json_object_object_get_ex(doc.get(), "error", &err)) {
		json_object *cls = nullptr, *desc = nullptr;
		json_object_object_get_ex(err, "class", &cls);
		json_object_object_get_ex(err, "desc", &desc);
		throw Error(CLOUDLET_E_LIBVIRT, "QEMU refused '" + command + "': " +
		                                    (desc ? json_object_get_string(desc) : "no description") + " (" +
		                                    (cls ? json_object_get_string(cls) : "GenericError") + ")");
	}
	if (!json_object_object_get_ex(doc.get(), "return", &ret))
		throw Error(CLOUDLET_E_CORRUPT, "QMP reply to '" + command + "' has neither return nor error");
	return JsonPtr(json_object_get(ret));
}

namespace {

JsonPtr parse_object(const char *text, size_t len, const std::string &what) {
	if (len > (64u << 20))
		throw Error(CLOUDLET_E_CORRUPT, what + " is larger than 64 MiB");
	json_tokener *tok = json_tokener_new();
	JsonPtr doc(json_tokener_parse_ex(tok, text, static_cast<int>(len)));
	json_tokener_error jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!doc || jerr != json_tokener_success || !json_object_is_type(doc.get(), json_type_object))
		throw Error(CLOUDLET_E_CORRUPT, what + " is not a JSON object: " + std::string(text, std::min<size_t>(len, 200)));
	return doc;
}

} // namespace

std::string QmpEvent::member(const char *key) const {
	json_object *v = nullptr;
	if (!data || !json_object_object_get_ex(data.get(), key, &v) || !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

QmpEvent qmp_parse_event(const std::string &message) {
	JsonPtr doc = parse_object(message.c_str(), message.size(), "QMP event");
	json_object *name = nullptr, *data = nullptr, *ts = nullptr;
	if (!json_object_object_get_ex(doc.get(), "event", &name) || !json_object_is_type(name, json_type_string))
		throw Error(CLOUDLET_E_CORRUPT, "QMP message is not an event: " + message.substr(0, 200));
	QmpEvent e;
	e.name = json_object_get_string(name);
	if (json_object_object_get_ex(doc.get(), "data", &data) && json_object_is_type(data, json_type_object))
		e.data.reset(json_object_get(data));
	else
		e.data.reset(json_object_new_object());
	e.seconds = -1;
	if (json_object_object_get_ex(doc.get(), "timestamp", &ts)) {
		json_object *s = nullptr, *u = nullptr;
		if (json_object_object_get_ex(ts, "seconds", &s))
			e.seconds = json_object_get_int64(s);
		if (json_object_object_get_ex(ts, "microseconds", &u)) {
			int64_t us = json_object_get_int64(u);
			e.micros = us >= 0 && us < 1000000 ? static_cast<uint32_t>(us) : 0;
		}
	}
	return e;
}

QmpEvent qmp_event_from_parts(const char *name, long long seconds, unsigned micros, const char *details) {
	QmpEvent e;
	e.name = name ? name : "";
	e.seconds = seconds;
	e.micros = micros < 1000000 ? micros : 0;
	if (details && *details)
		e.data = parse_object(details, strlen(details), "data of QMP event " + e.name);
	else
		e.data.reset(json_object_new_object());
	return e;
}

} // namespace cloudlet::qemu
