// cloudlet_snapshot_inspect(): runs ops::snapshot_info and hands out a
// report living in one allocation.
#include "abi/guard.h"
#include "abi/handles.h"
#include "abi/options.h"
#include "abi/reports.h"
#include "ops/snapshot_capture.h"
#include "ops/snapshot_info.h"

#include <cloudlet.h>

#include <string>
#include <vector>

namespace {

struct SnapshotInfoHolder : cloudlet_snapshot_info, cloudlet::abi::StringKeeper {
	std::vector<cloudlet_ram_block_info> block_items;
	std::vector<const char *> device_ptrs;
};

SnapshotInfoHolder *to_c(const cloudlet::ops::SnapshotInfo &i) {
	auto *h = new SnapshotInfoHolder();
	cloudlet_snapshot_info &p = *h;
	p = cloudlet_snapshot_info{};
	p.version = CLOUDLET_SNAPSHOT_INFO_VERSION;
	p.path = h->keep(i.path);
	p.format = h->keep(i.format);
	p.image_version = i.image_version;
	p.complete = i.complete ? 1 : 0;
	p.was_running = i.was_running ? 1 : 0;
	p.stream_version = i.stream_version;
	p.machine_type = h->keep(i.machine_type);
	p.domain_name = h->keep(i.domain_name);
	p.domain_uuid = h->keep(i.domain_uuid);
	for (const auto &b : i.blocks)
		h->block_items.push_back({1, h->keep(b.name), b.length, b.pages, b.zero_pages, b.data_pages});
	p.block_count = h->block_items.size();
	p.blocks = h->block_items.data();
	p.total_pages = i.total_pages;
	p.zero_pages = i.zero_pages;
	p.data_pages = i.data_pages;
	p.page_records = i.page_records;
	p.ram_sections = i.ram_sections;
	p.file_bytes = i.file_bytes;
	p.device_state_bytes = i.device_state_bytes;
	for (const auto &d : i.devices)
		h->device_ptrs.push_back(h->keep(d));
	p.device_count = h->device_ptrs.size();
	p.devices = h->device_ptrs.data();
	p.devices_split = i.devices_split ? 1 : 0;
	return h;
}

} // namespace

using cloudlet::abi::guard;
using cloudlet::abi::init_options;
using cloudlet::abi::read_options;
using cloudlet::abi::require;

extern "C" {

CLOUDLET_API cloudlet_status cloudlet_snapshot_options_init(cloudlet_snapshot_options *opts, unsigned int version) {
	return guard(__func__, [&] {
		init_options(opts, version);
	});
}

CLOUDLET_API cloudlet_status cloudlet_snapshot_inspect(cloudlet_snapshot_info **out, cloudlet_ctx *ctx,
                                                       const char *path, const cloudlet_snapshot_options *opts) {
	return guard(__func__, [&] {
		require(out != nullptr, "out is NULL");
		*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		require(path != nullptr && *path, "path is NULL or empty");
		cloudlet_snapshot_options o = read_options(opts);
		cloudlet::Progress progress(o.progress, o.progress_userdata, o.cancel);
		*out = to_c(cloudlet::ops::snapshot_info(path, progress));
	});
}

CLOUDLET_API void cloudlet_snapshot_info_free(cloudlet_snapshot_info *info) {
	delete static_cast<SnapshotInfoHolder *>(info);
}

} // extern "C"

// ---------------------------------------------------------------------------
// cloudlet_snapshot_capture()

namespace {

struct CaptureResultHolder : cloudlet_capture_result, cloudlet::abi::StringKeeper {};

CaptureResultHolder *to_c(const cloudlet::ops::CaptureResult &r) {
	auto *h = new CaptureResultHolder();
	cloudlet_capture_result &p = *h;
	p = cloudlet_capture_result{};
	p.version = CLOUDLET_CAPTURE_RESULT_VERSION;
	p.path = h->keep(r.path);
	p.domain_name = h->keep(r.domain_name);
	p.domain_uuid = h->keep(r.domain_uuid);
	p.was_running = r.was_running ? 1 : 0;
	p.final_state = h->keep(r.final_state);
	p.stream_bytes = r.stream_bytes;
	p.page_records = r.page_records;
	p.ram_sections = r.ram_sections;
	p.passes = r.passes;
	p.total_pages = r.total_pages;
	p.data_pages = r.data_pages;
	p.file_bytes = r.file_bytes;
	p.seconds = r.seconds;
	p.downtime_ms = r.downtime_ms;
	return h;
}

} // namespace

extern "C" {

CLOUDLET_API cloudlet_status cloudlet_capture_options_init(cloudlet_capture_options *opts, unsigned int version) {
	return guard(__func__, [&] {
		init_options(opts, version);
	});
}

CLOUDLET_API cloudlet_status cloudlet_snapshot_capture(cloudlet_capture_result **out, cloudlet_ctx *ctx,
                                                       const char *domain, const char *path,
                                                       const cloudlet_capture_options *opts) {
	return guard(__func__, [&] {
		if (out)
			*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		require(domain != nullptr && *domain, "domain is NULL or empty");
		require(path != nullptr && *path, "path is NULL or empty");
		cloudlet_capture_options o = read_options(opts);
		int format = cloudlet::abi::enum_value(o.format);
		require(format == CLOUDLET_CAPTURE_SAVE_IMAGE || format == CLOUDLET_CAPTURE_MEMORY_IMAGE,
		        "unknown capture format");
		cloudlet::ops::CaptureOptions co;
		co.live = o.live != 0;
		co.stop = o.stop != 0;
		co.format = format == CLOUDLET_CAPTURE_MEMORY_IMAGE ? cloudlet::ops::CaptureFormat::MemoryImage
		                                                      : cloudlet::ops::CaptureFormat::SaveImage;
		cloudlet::Progress progress(o.progress, o.progress_userdata, o.cancel);
		cloudlet::ops::CaptureResult r = cloudlet::ops::snapshot_capture(ctx->ctx, domain, path, co, progress);
		if (out)
			*out = to_c(r);
	});
}

CLOUDLET_API void cloudlet_capture_result_free(cloudlet_capture_result *result) {
	delete static_cast<CaptureResultHolder *>(result);
}

} // extern "C"
