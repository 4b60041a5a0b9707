// VM synthesis (docs/synthesis.md): an overlay (a file or an http(s) URL)
// and the base it names become the launch VM, running, on this cloudlet.
#pragma once

#include "format/overlay_file.h"
#include "engine/postcopy_source.h"
#include "net/http_source.h"
#include "ops/context.h"
#include "ops/kind_counts.h"
#include "util/progress.h"
#include "virt/nic_swap.h"

#include <string>
#include <vector>

namespace cloudlet::ops {

struct SynthesisOptions {
	std::string base;      // "": the overlay's base; else an ID or name that must be it
	std::string name;      // "": "<base name>-<8 hex>"
	std::string virt_type; // "": the base's
	std::string uuid;      // "": a new random one
	virt::NicRequest nic;  // the fresh NICs
	unsigned threads = 0;  // segments decompressed at once; 0: the context's worker threads
	net::HttpOptions http; // URL overlays
	bool early_start = false; // run the VM before QEMU holds its memory (docs/early-start.md)
};

struct SynthesisInfo {
	std::string name, uuid, base_id, dir, virt_type, source;
	std::vector<std::string> old_macs, macs;
	format::OverlayCounts counts;
	KindCounts record_kinds() const { return kind_counts(counts.records); }
	uint64_t memory_chunks = 0, disk_chunks = 0, disk_layer_bytes = 0;
	// Wall-clock phases. fetch: time spent waiting for overlay bytes;
	// decompress: checking + decompressing segments (summed over threads,
	// overlapping the fetch); apply: placing chunks; read: the whole
	// fetch/decompress/apply pipeline; restore: libvirt restoring while the
	// memory stream is generated; nic: the NIC swap.
	double fetch_seconds = 0, decompress_seconds = 0, apply_seconds = 0, read_seconds = 0;
	double restore_seconds = 0, nic_seconds = 0, total_seconds = 0;
	// Early start: from the start until the VM ran, and what QEMU asked for
	// while its memory streamed in (zero otherwise).
	bool early_start = false;
	double running_seconds = 0;
	uint64_t demand_requests = 0, demand_pages = 0, background_pages = 0, held_pages = 0;
};

SynthesisInfo synthesize(Context &ctx, const std::string &overlay, const SynthesisOptions &o, Progress &progress);

} // namespace cloudlet::ops
