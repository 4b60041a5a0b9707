// QMP message framing (json-c): building a command and reading QEMU's reply,
// whether it is {"return": ...} or {"error": {"class", "desc"}}. Pure JSON in
// and out; the transport (libvirt's monitor passthrough) is src/virt/qmp_client.
#pragma once

#include <json-c/json.h>

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

} // namespace cloudlet::qemu
