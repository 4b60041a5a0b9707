#include "qmp_message.h"

#include "util/error.h"

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

} // namespace cloudlet::qemu
