// QMP message framing (json-c): building a command and reading QEMU's reply,
// whether it is {"return": ...} or {"error": {"class", "desc"}}. Pure JSON in
// and out; the transport (libvirt's monitor passthrough) is src/virt/qmp_client.
#pragma once

#include <json-c/json.h>

#include <cstdint>
#include <memory>
#include <string>

namespace cloudlet::qemu {

struct JsonFree {
	void operator()(json_object *o) const { json_object_put(o); }
};
using JsonPtr = std::unique_ptr<json_object, JsonFree>;

// {"execute": command[, "arguments": arguments]}. `arguments` is borrowed.
std::string qmp_command(const std::string &command, json_object *arguments = nullptr);

// The "return" member of a reply (an empty object if the reply has none but
// is a success). A QMP error throws CLOUDLET_E_LIBVIRT with QEMU's class and
// description; malformed JSON throws CLOUDLET_E_CORRUPT.
JsonPtr qmp_parse_reply(const std::string &reply, const std::string &command);

// An asynchronous QMP event: {"event": NAME, "data": {...},
// "timestamp": {"seconds": S, "microseconds": U}}.
struct QmpEvent {
	std::string name;
	JsonPtr data;          // the "data" member; an empty object if absent
	int64_t seconds = 0;   // QEMU's timestamp; -1 if QEMU had none
	uint32_t micros = 0;
	std::string member(const char *key) const; // a string member of data, "" if absent
};

// Parses a whole event message. Malformed or non-event JSON throws
// CLOUDLET_E_CORRUPT.
QmpEvent qmp_parse_event(const std::string &message);

// The same from the pieces libvirt's passthrough hands a callback, where
// `details` is the "data" member as JSON text (may be null).
QmpEvent qmp_event_from_parts(const char *name, long long seconds, unsigned micros, const char *details);

} // namespace cloudlet::qemu
