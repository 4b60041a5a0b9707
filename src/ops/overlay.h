// VM overlays (docs/overlays.md): create one from a domain resumed from a
// base and customised, and describe one.
#pragma once

#include "engine/dedup.h"
#include "ops/context.h"
#include "ops/kind_counts.h"
#include "util/progress.h"

#include <string>

namespace cloudlet::ops {

struct OverlayCreateOptions {
	std::string codec = "zstd"; // "zstd", "lzma", "none"
	int level = -1;             // codec default
	bool stop = false;          // shut the domain off afterwards
	size_t segment_bytes = 4u << 20;
	unsigned threads = 0;       // compression threads; 0: the context's worker threads
};

struct OverlayInfo {
	std::string path, base_id, codec, domain;
	uint64_t memory_chunks = 0, disk_chunks = 0;
	engine::DedupCounts counts; // [0 memory / 1 disk][0 unchanged, 1..5 kinds]
	KindCounts memory_kinds() const { return kind_counts(counts.n[0]); }
	KindCounts disk_kinds() const { return kind_counts(counts.n[1]); }
	uint64_t segments = 0, payload_bytes = 0, stored_bytes = 0, file_bytes = 0, device_state_bytes = 0;
	double capture_seconds = 0, disk_seconds = 0, total_seconds = 0;
};

OverlayInfo overlay_create(Context &ctx, const std::string &domain, const std::string &path,
                           const OverlayCreateOptions &o, Progress &progress);
OverlayInfo overlay_info(const std::string &path, Progress &progress);

} // namespace cloudlet::ops
