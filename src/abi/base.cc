// The base-VM calls: argument checks and translation to ops/base.h.
#include "abi/guard.h"
#include "abi/handles.h"
#include "abi/options.h"
#include "abi/reports.h"
#include "ops/base.h"

#include <cloudlet.h>

#include <string>
#include <vector>

namespace {

using cloudlet::abi::guard;
using cloudlet::abi::init_options;
using cloudlet::abi::read_options;
using cloudlet::abi::require;

struct BaseInfoHolder : cloudlet_base_info, cloudlet::abi::StringKeeper {
	std::vector<cloudlet_base_part> part_items;
	std::vector<uint64_t> part_allocated;
};

BaseInfoHolder *to_c(const cloudlet::ops::BaseInfo &b) {
	auto *h = new BaseInfoHolder();
	cloudlet_base_info &p = *h;
	p = cloudlet_base_info{};
	p.version = CLOUDLET_BASE_INFO_VERSION;
	p.id = h->keep(b.entry.id);
	p.name = h->keep(b.entry.name);
	p.created = h->keep(b.entry.created);
	p.source_domain = h->keep(b.entry.source_domain);
	p.dir = h->keep(b.dir);
	p.virt_type = h->keep(b.manifest.virt_type);
	p.machine = h->keep(b.manifest.machine);
	p.cpu_model = h->keep(b.manifest.cpu_model);
	p.memory_bytes = b.manifest.memory_bytes;
	p.total_bytes = b.manifest.total_bytes();
	for (const auto &part : b.manifest.parts)
		h->part_items.push_back({1, h->keep(part.file), h->keep(part.role), h->keep(part.target), part.size,
		                         h->keep(part.digest)});
	p.part_count = h->part_items.size();
	p.parts = h->part_items.data();
	p.status = h->keep(b.status);
	p.problem = h->keep(b.problem);
	p.capture_seconds = b.entry.capture_seconds;
	p.disk_seconds = b.entry.disk_seconds;
	p.hash_seconds = b.entry.hash_seconds;
	p.total_seconds = b.entry.total_seconds;
	p.allocated_bytes = b.allocated_bytes;
	h->part_allocated = b.part_allocated;
	h->part_allocated.resize(h->part_items.size()); // one per part, whatever happened
	p.part_allocated_bytes = h->part_allocated.data();
	p.imported_from = h->keep(b.entry.imported_from);
	return h;
}

struct BaseListHolder : cloudlet_base_list {
	std::vector<BaseInfoHolder *> items;
	std::vector<const cloudlet_base_info *> ptrs;
	~BaseListHolder() {
		for (auto *i : items)
			delete i;
	}
};

using InstanceHolder = cloudlet::abi::VmReportHolder<cloudlet_instance_info>;

} // namespace

extern "C" {

CLOUDLET_API cloudlet_status cloudlet_base_options_init(cloudlet_base_options *opts, unsigned int version) {
	return guard(__func__, [&] {
		init_options(opts, version);
	});
}

CLOUDLET_API cloudlet_status cloudlet_resume_options_init(cloudlet_resume_options *opts, unsigned int version) {
	return guard(__func__, [&] {
		init_options(opts, version);
	});
}

CLOUDLET_API cloudlet_status cloudlet_base_create(cloudlet_base_info **out, cloudlet_ctx *ctx, const char *domain,
                                                  const cloudlet_base_options *opts) {
	return guard(__func__, [&] {
		require(out != nullptr, "out is NULL");
		*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		require(domain != nullptr && *domain, "domain is NULL or empty");
		cloudlet_base_options o = read_options(opts);
		cloudlet::ops::BaseCreateOptions co;
		co.name = o.name ? o.name : "";
		co.stop = o.stop != 0;
		cloudlet::Progress progress(o.progress, o.progress_userdata, o.cancel);
		*out = to_c(cloudlet::ops::base_create(ctx->ctx, domain, co, progress));
	});
}

CLOUDLET_API cloudlet_status cloudlet_base_show(cloudlet_base_info **out, cloudlet_ctx *ctx, const char *base,
                                                const cloudlet_base_options *opts) {
	return guard(__func__, [&] {
		require(out != nullptr, "out is NULL");
		*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		require(base != nullptr && *base, "base is NULL or empty");
		cloudlet_base_options o = read_options(opts);
		cloudlet::Progress progress(o.progress, o.progress_userdata, o.cancel);
		*out = to_c(cloudlet::ops::base_show(ctx->ctx, base, o.full_verify != 0, progress));
	});
}

CLOUDLET_API cloudlet_status cloudlet_base_list_get(cloudlet_base_list **out, cloudlet_ctx *ctx) {
	return guard(__func__, [&] {
		require(out != nullptr, "out is NULL");
		*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		auto *l = new BaseListHolder();
		for (const auto &b : cloudlet::ops::base_list(ctx->ctx)) {
			l->items.push_back(to_c(b));
			l->ptrs.push_back(l->items.back());
		}
		l->version = 1;
		l->count = l->ptrs.size();
		l->bases = l->ptrs.data();
		*out = l;
	});
}

CLOUDLET_API void cloudlet_base_list_free(cloudlet_base_list *list) { delete static_cast<BaseListHolder *>(list); }

CLOUDLET_API cloudlet_status cloudlet_base_remove(cloudlet_ctx *ctx, const char *base) {
	return guard(__func__, [&] {
		require(ctx != nullptr, "ctx is NULL");
		require(base != nullptr && *base, "base is NULL or empty");
		cloudlet::ops::base_remove(ctx->ctx, base);
	});
}

CLOUDLET_API cloudlet_status cloudlet_base_export(cloudlet_ctx *ctx, const char *base, const char *path,
                                                  const cloudlet_base_options *opts) {
	return guard(__func__, [&] {
		require(ctx != nullptr, "ctx is NULL");
		require(base != nullptr && *base, "base is NULL or empty");
		require(path != nullptr && *path, "path is NULL or empty");
		cloudlet_base_options o = read_options(opts);
		cloudlet::Progress progress(o.progress, o.progress_userdata, o.cancel);
		cloudlet::ops::base_export(ctx->ctx, base, path, progress);
	});
}

CLOUDLET_API cloudlet_status cloudlet_base_import(cloudlet_base_info **out, cloudlet_ctx *ctx, const char *path,
                                                  const cloudlet_base_options *opts) {
	return guard(__func__, [&] {
		if (out)
			*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		require(path != nullptr && *path, "path is NULL or empty");
		cloudlet_base_options o = read_options(opts);
		cloudlet::Progress progress(o.progress, o.progress_userdata, o.cancel);
		auto info = cloudlet::ops::base_import(ctx->ctx, path, o.name ? o.name : "", progress);
		if (out)
			*out = to_c(info);
	});
}

CLOUDLET_API cloudlet_status cloudlet_base_package_inspect(cloudlet_base_info **out, cloudlet_ctx *ctx,
                                                           const char *path) {
	return guard(__func__, [&] {
		require(out != nullptr, "out is NULL");
		*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		require(path != nullptr && *path, "path is NULL or empty");
		*out = to_c(cloudlet::ops::base_package_inspect(path));
	});
}

CLOUDLET_API void cloudlet_base_info_free(cloudlet_base_info *info) { delete static_cast<BaseInfoHolder *>(info); }

CLOUDLET_API cloudlet_status cloudlet_base_resume(cloudlet_instance_info **out, cloudlet_ctx *ctx, const char *base,
                                                  const cloudlet_resume_options *opts) {
	return guard(__func__, [&] {
		if (out)
			*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		require(base != nullptr && *base, "base is NULL or empty");
		cloudlet_resume_options o = read_options(opts);
		cloudlet::ops::ResumeOptions ro;
		ro.name = o.name ? o.name : "";
		ro.virt_type = o.virt_type ? o.virt_type : "";
		ro.uuid = o.uuid ? o.uuid : "";
		ro.nic.mac = o.mac ? o.mac : "";
		ro.nic.network = o.network ? o.network : "";
		ro.nic.nic_xml = o.nic_xml ? o.nic_xml : "";
		require(ro.virt_type.empty() || ro.virt_type == "qemu" || ro.virt_type == "kvm",
		        "virt_type must be NULL, \"qemu\" or \"kvm\"");
		cloudlet::Progress progress(o.progress, o.progress_userdata, o.cancel);
		cloudlet::ops::InstanceInfo r = cloudlet::ops::base_resume(ctx->ctx, base, ro, progress);
		if (!out)
			return;
		auto *h = new InstanceHolder();
		cloudlet_instance_info &p = *h;
		p = cloudlet_instance_info{};
		p.version = 1;
		cloudlet::abi::fill_instance(*h, r);
		p.seconds = r.seconds;
		p.restore_seconds = r.restore_seconds;
		p.nic_seconds = r.nic_seconds;
		*out = h;
	});
}

CLOUDLET_API void cloudlet_instance_info_free(cloudlet_instance_info *info) {
	delete static_cast<InstanceHolder *>(info);
}

CLOUDLET_API cloudlet_status cloudlet_instance_remove(cloudlet_ctx *ctx, const char *name) {
	return guard(__func__, [&] {
		require(ctx != nullptr, "ctx is NULL");
		require(name != nullptr && *name, "name is NULL or empty");
		cloudlet::ops::instance_remove(ctx->ctx, name);
	});
}

} // extern "C"
