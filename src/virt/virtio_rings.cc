#include "virt/virtio_rings.h"

#include "virt/qmp_client.h"

#include <json-c/json.h>

#include <string>

namespace cloudlet::virt {

namespace {

int64_t member(json_object *o, const char *k) {
	json_object *v = nullptr;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

} // namespace

std::vector<GuestRange> virtio_ring_ranges(virDomainPtr dom) {
	QmpClient qmp(dom);
	std::vector<GuestRange> out;
	qemu::JsonPtr devices = qmp.execute("x-query-virtio");
	if (!devices || !json_object_is_type(devices.get(), json_type_array))
		return out;
	for (size_t i = 0; i < json_object_array_length(devices.get()); i++) {
		json_object *path = nullptr;
		if (!json_object_object_get_ex(json_object_array_get_idx(devices.get(), i), "path", &path))
			continue;
		qemu::JsonPtr args(json_object_new_object());
		json_object_object_add(args.get(), "path", json_object_get(path));
		qemu::JsonPtr status = qmp.execute("x-query-virtio-status", args.get());
		int64_t queues = status ? member(status.get(), "num-vqs") : 0;
		for (int64_t q = 0; q < queues && q < 1024; q++) {
			json_object_object_add(args.get(), "queue", json_object_new_int64(q));
			qemu::JsonPtr vq = qmp.execute("x-query-virtio-queue-status", args.get());
			if (!vq)
				continue;
			// Virtio 1.0 split rings: 16 bytes per descriptor; the available
			// ring 2 bytes per entry and the used ring 8, each with 6 bytes
			// of flags, index and event.
			uint64_t num = static_cast<uint64_t>(member(vq.get(), "vring-num"));
			uint64_t desc = static_cast<uint64_t>(member(vq.get(), "vring-desc"));
			uint64_t avail = static_cast<uint64_t>(member(vq.get(), "vring-avail"));
			uint64_t used = static_cast<uint64_t>(member(vq.get(), "vring-used"));
			if (!num || num > 32768)
				continue;
			if (desc)
				out.push_back({desc, 16 * num});
			if (avail)
				out.push_back({avail, 6 + 2 * num});
			if (used)
				out.push_back({used, 6 + 8 * num});
		}
	}
	return out;
}

} // namespace cloudlet::virt
