#include "ops/launch_source.h"

#include "host/process.h"
#include "ops/base_common.h"
#include "ops/base_verify.h"
#include "util/error.h"
#include "util/json.h"
#include "util/unique_fd.h"
#include "util/xml.h"
#include "virt/domain.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <libxml/tree.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

namespace cloudlet::ops {

namespace {

uint64_t jnum(json_object *o, const char *k) {
	json_object *v = nullptr;
	return json_object_object_get_ex(o, k, &v) ? static_cast<uint64_t>(json_object_get_int64(v)) : 0;
}
bool jbool(json_object *o, const char *k) {
	json_object *v = nullptr;
	return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

// The clusters of a qcow2 that its own layer holds (depth 0): data with the
// host offset to read them at, or explicit zeros.
struct Extent {
	uint64_t start, length;
	bool data;
	uint64_t host_offset;
};

std::vector<Extent> own_extents(const std::string &qcow2) {
	std::string out = host::run_program({"qemu-img", "map", "--output=json", "-U", qcow2});
	Json doc(json_tokener_parse(out.c_str()));
	if (!doc || !json_object_is_type(doc.get(), json_type_array))
		fail(CLOUDLET_E_IO, "qemu-img map of " + qcow2 + " did not give a JSON list");
	std::vector<Extent> v;
	for (size_t i = 0; i < json_object_array_length(doc.get()); i++) {
		json_object *e = json_object_array_get_idx(doc.get(), i);
		if (jnum(e, "depth") != 0 || !jbool(e, "present"))
			continue;
		Extent x{jnum(e, "start"), jnum(e, "length"), jbool(e, "data"), jnum(e, "offset")};
		json_object *off = nullptr;
		if (x.data && !json_object_object_get_ex(e, "offset", &off))
			fail(CLOUDLET_E_UNSUPPORTED, qcow2 + ": clusters at " + std::to_string(x.start) +
			                                 " are compressed or encrypted; overlays read plain clusters only");
		if (x.start % chunk::kChunkSize)
			fail(CLOUDLET_E_UNSUPPORTED, qcow2 + ": an extent at " + std::to_string(x.start) + " is not 4 KiB aligned");
		v.push_back(x);
	}
	return v;
}

uint64_t virtual_size(const std::string &image) {
	std::string out = host::run_program({"qemu-img", "info", "--output=json", "-U", image});
	Json doc(json_tokener_parse(out.c_str()));
	uint64_t s = doc ? jnum(doc.get(), "virtual-size") : 0;
	if (!s)
		fail(CLOUDLET_E_IO, "qemu-img info of " + image + " gave no virtual size");
	return s;
}

} // namespace

void describe_launch(Context &ctx, virt::DomainRef dom, Progress &progress, LaunchSource &out) {
	store::BaseStore st(ctx.settings().store_dir);
	out.domain = virt::domain_name(dom);
	out.xml = virt::save_xml(dom);
	auto doc = xml::parse(out.xml, "domain XML of " + out.domain);
	for (xmlNode *d : xml::select(doc.get(), "/domain/devices/disk[@device='disk' or not(@device)]")) {
		auto file = xml::value(doc.get(), "source/@file", d), target = xml::value(doc.get(), "target/@dev", d);
		if (!file || !target)
			fail(CLOUDLET_E_INVALID_ARG, "domain " + out.domain + " has a disk that is not a file");
		out.disks.push_back({*target, *file, 0, nullptr});
	}
	if (out.disks.empty())
		fail(CLOUDLET_E_INVALID_ARG, "domain " + out.domain + " has no disk; it was not resumed from a base");
	std::string inst_dir = out.disks[0].file.substr(0, out.disks[0].file.find_last_of('/'));
	std::string base_id;
	try {
		base_id = read_text_file(inst_dir + "/base.id", 256);
	} catch (const Error &) {
		fail(CLOUDLET_E_INVALID_ARG, "domain " + out.domain + " was not resumed from a base of this store (no " +
		                                 inst_dir + "/base.id)");
	}
	while (!base_id.empty() && (base_id.back() == '\n' || base_id.back() == ' '))
		base_id.pop_back();
	out.base = verify_base(st, st.find(base_id), false, progress);
	if (out.base.status != "ok")
		fail(CLOUDLET_E_CORRUPT, "base " + base_id + " is corrupt: " + out.base.problem);
	for (auto &d : out.disks) {
		for (const auto &p : out.base.manifest.parts)
			if (p.role == "disk" && p.target == d.target)
				d.base_part = &p;
		if (!d.base_part)
			fail(CLOUDLET_E_INVALID_ARG, "disk " + d.target + " of " + out.domain + " is not in base " + base_id);
		d.bytes = virtual_size(d.file);
	}

	// The base as dedup sees it.
	const std::string &bd = out.base.dir;
	out.base_memory = std::make_unique<qemu::ImageFile>(bd + "/memory.cltmem");
	out.base_memory_index = std::make_unique<engine::IndexFile>(bd + "/memory.idx");
	out.dedup.memory = out.base_memory.get();
	out.dedup.drop_resident = [m = out.base_memory.get()] { m->drop_resident(); };
	out.dedup.memory_index = out.base_memory_index.get();
	for (const auto &d : out.disks) {
		out.base_disk_maps.push_back(std::make_unique<MappedFile>(bd + "/" + d.base_part->file));
		out.base_indexes.push_back(std::make_unique<engine::IndexFile>(bd + "/disk-" + d.target + ".idx"));
		std::string s512 = bd + "/disk-" + d.target + ".idx512";
		out.base_indexes.push_back(access(s512.c_str(), R_OK) == 0 ? std::make_unique<engine::IndexFile>(s512) : nullptr);
	}
	for (size_t i = 0; i < out.disks.size(); i++)
		out.dedup.disks.push_back({out.base_disk_maps[i]->data(), out.base_disk_maps[i]->size(),
		                           out.base_indexes[2 * i].get(), out.base_indexes[2 * i + 1].get()});
}

void for_each_own_chunk(const LaunchDisk &d, const std::function<void(uint64_t, const uint8_t *)> &f) {
	std::vector<uint8_t> chunk(chunk::kChunkSize), zero(chunk::kChunkSize, 0);
	UniqueFd qfd = open_for_reading(d.file);
	for (const Extent &x : own_extents(d.file)) {
		for (uint64_t off = 0; off < x.length; off += chunk::kChunkSize) {
			uint64_t at = x.start + off;
			if (at >= d.bytes)
				break;
			const uint8_t *data = zero.data();
			if (x.data) {
				size_t want = static_cast<size_t>(std::min<uint64_t>(chunk::kChunkSize, d.bytes - at));
				std::fill(chunk.begin(), chunk.end(), 0);
				ssize_t n = pread(qfd.get(), chunk.data(), want, static_cast<off_t>(x.host_offset + off));
				if (n != static_cast<ssize_t>(want))
					fail_errno("cannot read " + d.file, n < 0 ? errno : EIO);
				data = chunk.data();
			}
			f(at / chunk::kChunkSize, data);
		}
	}
}

} // namespace cloudlet::ops
