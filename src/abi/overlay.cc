// The overlay calls: argument checks and translation to ops/overlay.h.
#include "abi/guard.h"
#include "abi/handles.h"
#include "abi/options.h"
#include "abi/reports.h"
#include "ops/overlay.h"

#include <cloudlet.h>

namespace {

using cloudlet::abi::guard;
using cloudlet::abi::init_options;
using cloudlet::abi::read_options;
using cloudlet::abi::require;

struct OverlayInfoHolder : cloudlet_overlay_info, cloudlet::abi::StringKeeper {};

OverlayInfoHolder *to_c(const cloudlet::ops::OverlayInfo &i) {
	auto *h = new OverlayInfoHolder();
	cloudlet_overlay_info &p = *h;
	p = cloudlet_overlay_info{};
	p.version = 2;
	p.path = h->keep(i.path);
	p.base_id = h->keep(i.base_id);
	p.codec = h->keep(i.codec);
	p.domain = h->keep(i.domain);
	p.memory_chunks = i.memory_chunks;
	p.disk_chunks = i.disk_chunks;
	// Shifted deltas count as deltas (the arrays cannot grow); version 2
	// says how many of them were shifted.
	cloudlet::ops::KindCounts memory = i.memory_kinds(), disk = i.disk_kinds();
	cloudlet::abi::copy_kinds(p.memory, memory);
	cloudlet::abi::copy_kinds(p.disk, disk);
	p.memory_shifted = memory.shifted;
	p.disk_shifted = disk.shifted;
	p.segments = i.segments;
	p.payload_bytes = i.payload_bytes;
	p.stored_bytes = i.stored_bytes;
	p.file_bytes = i.file_bytes;
	p.device_state_bytes = i.device_state_bytes;
	p.capture_seconds = i.capture_seconds;
	p.disk_seconds = i.disk_seconds;
	p.total_seconds = i.total_seconds;
	return h;
}

} // namespace

extern "C" {

CLOUDLET_API cloudlet_status cloudlet_overlay_options_init(cloudlet_overlay_options *opts, unsigned int version) {
	return guard(__func__, [&] {
		init_options(opts, version);
	});
}

CLOUDLET_API cloudlet_status cloudlet_overlay_create(cloudlet_overlay_info **out, cloudlet_ctx *ctx, const char *domain,
                                                     const char *path, const cloudlet_overlay_options *opts) {
	return guard(__func__, [&] {
		if (out)
			*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		require(domain != nullptr && *domain, "domain is NULL or empty");
		require(path != nullptr && *path, "path is NULL or empty");
		cloudlet_overlay_options o = read_options(opts);
		cloudlet::ops::OverlayCreateOptions co;
		co.codec = o.codec ? o.codec : "zstd";
		require(co.codec == "zstd" || co.codec == "lzma" || co.codec == "none" || co.codec == "auto",
		        "codec must be zstd, lzma, none or auto");
		require(o.level >= -1 && o.level <= 22, "level is out of range");
		co.level = o.level;
		co.stop = o.stop != 0;
		require(o.threads <= 256, "threads is out of range");
		co.threads = o.threads;
		cloudlet::Progress progress(o.progress, o.progress_userdata, o.cancel);
		auto info = cloudlet::ops::overlay_create(ctx->ctx, domain, path, co, progress);
		if (out)
			*out = to_c(info);
	});
}

CLOUDLET_API cloudlet_status cloudlet_overlay_inspect(cloudlet_overlay_info **out, cloudlet_ctx *ctx, const char *path,
                                                      const cloudlet_overlay_options *opts) {
	return guard(__func__, [&] {
		require(out != nullptr, "out is NULL");
		*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		require(path != nullptr && *path, "path is NULL or empty");
		cloudlet_overlay_options o = read_options(opts);
		cloudlet::Progress progress(o.progress, o.progress_userdata, o.cancel);
		*out = to_c(cloudlet::ops::overlay_info(path, progress));
	});
}

CLOUDLET_API void cloudlet_overlay_info_free(cloudlet_overlay_info *info) {
	delete static_cast<OverlayInfoHolder *>(info);
}

} // extern "C"
