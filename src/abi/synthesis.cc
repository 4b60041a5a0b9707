// The synthesis call: argument checks and translation to ops/synthesis.h.
#include "abi/guard.h"
#include "abi/handles.h"
#include "abi/options.h"
#include "abi/reports.h"
#include "ops/synthesis.h"

#include <cloudlet.h>

#include <vector>

namespace {

using cloudlet::abi::guard;
using cloudlet::abi::init_options;
using cloudlet::abi::read_options;
using cloudlet::abi::require;

using SynthesisHolder = cloudlet::abi::VmReportHolder<cloudlet_synthesis_info>;

std::string str(const char *s) { return s ? s : ""; }

} // namespace

extern "C" {

CLOUDLET_API cloudlet_status cloudlet_synthesis_options_init(cloudlet_synthesis_options *opts, unsigned int version) {
	return guard(__func__, [&] {
		init_options(opts, version);
	});
}

CLOUDLET_API cloudlet_status cloudlet_synthesize(cloudlet_synthesis_info **out, cloudlet_ctx *ctx, const char *overlay,
                                                 const cloudlet_synthesis_options *opts) {
	return guard(__func__, [&] {
		if (out)
			*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		require(overlay != nullptr && *overlay, "overlay is NULL or empty");
		cloudlet_synthesis_options o = read_options(opts);
		cloudlet::ops::SynthesisOptions so;
		so.base = str(o.base);
		so.name = str(o.name);
		so.virt_type = str(o.virt_type);
		so.uuid = str(o.uuid);
		require(so.virt_type.empty() || so.virt_type == "qemu" || so.virt_type == "kvm",
		        "virt_type must be NULL, \"qemu\" or \"kvm\"");
		so.nic.mac = str(o.mac);
		so.nic.network = str(o.network);
		so.nic.nic_xml = str(o.nic_xml);
		require(o.threads <= 256, "threads is out of range");
		so.threads = o.threads;
		so.http.ca_file = str(o.ca_file);
		if (o.max_download_bytes)
			so.http.max_bytes = o.max_download_bytes;
		if (o.stall_timeout_seconds)
			so.http.stall_timeout_s = o.stall_timeout_seconds;
		require((o.flags & ~unsigned(CLOUDLET_SYNTHESIS_EARLY_START)) == 0, "flags holds unknown bits");
		so.early_start = o.flags & CLOUDLET_SYNTHESIS_EARLY_START;
		cloudlet::Progress progress(o.progress, o.progress_userdata, o.cancel);
		cloudlet::ops::SynthesisInfo r = cloudlet::ops::synthesize(ctx->ctx, overlay, so, progress);
		if (!out)
			return;
		auto *h = new SynthesisHolder();
		cloudlet_synthesis_info &p = *h;
		p = cloudlet_synthesis_info{};
		p.version = 2;
		cloudlet::abi::fill_instance(*h, r);
		p.source = h->keep(r.source);
		p.overlay_bytes = r.counts.file_bytes;
		p.memory_chunks = r.memory_chunks;
		p.disk_chunks = r.disk_chunks;
		cloudlet::abi::copy_kinds(p.records, r.record_kinds()); // shifted deltas count as deltas
		p.disk_layer_bytes = r.disk_layer_bytes;
		p.fetch_seconds = r.fetch_seconds;
		p.decompress_seconds = r.decompress_seconds;
		p.apply_seconds = r.apply_seconds;
		p.read_seconds = r.read_seconds;
		p.restore_seconds = r.restore_seconds;
		p.nic_seconds = r.nic_seconds;
		p.total_seconds = r.total_seconds;
		p.early_start = r.early_start;
		p.running_seconds = r.running_seconds;
		p.demand_requests = r.demand_requests;
		p.demand_pages = r.demand_pages;
		p.background_pages = r.background_pages;
		p.held_pages = r.held_pages;
		*out = h;
	});
}

CLOUDLET_API void cloudlet_synthesis_info_free(cloudlet_synthesis_info *info) {
	delete static_cast<SynthesisHolder *>(info);
}

} // extern "C"
