// json-c objects owned by a unique_ptr: the one holder of the library, so a
// throw between json_object_new_* and json_object_put never leaks.
#pragma once

#include <json-c/json.h>

#include <memory>

namespace cloudlet {

struct JsonPut {
	void operator()(json_object *o) const { json_object_put(o); }
};
using Json = std::unique_ptr<json_object, JsonPut>;

} // namespace cloudlet
