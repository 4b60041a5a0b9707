// `snapshot info`: what a libvirt save image or a bare QEMU migration stream
// holds, read in one streaming pass (no page is kept).
#pragma once

#include "util/progress.h"

#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet::ops {

struct SnapshotBlock {
	std::string name;
	uint64_t length = 0, pages = 0, zero_pages = 0, data_pages = 0;
};

struct SnapshotInfo {
	std::string path;
	std::string format;              // "libvirt-save" or "qemu-stream"
	uint32_t image_version = 0;      // libvirt save image version (0: bare stream)
	bool complete = true, was_running = false;
	uint32_t stream_version = 0;
	std::string machine_type, domain_name, domain_uuid;
	std::vector<SnapshotBlock> blocks;
	uint64_t total_pages = 0, zero_pages = 0, data_pages = 0, page_records = 0, ram_sections = 0;
	uint64_t file_bytes = 0, device_state_bytes = 0;
	std::vector<std::string> devices; // "name/instance", in stream order
	bool devices_split = false;
	std::string devices_problem;
};

SnapshotInfo snapshot_info(const std::string &path, Progress &progress);

} // namespace cloudlet::ops
