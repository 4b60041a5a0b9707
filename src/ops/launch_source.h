// What overlay creation and a handoff's source share: a running instance of
// a base as dedup sees it — its disks (copy-on-write layers over the base),
// its verified base, the base's memory, disks and indexes mapped — and the
// chunks its disk layers hold.
#pragma once

#include "engine/chunk_index.h"
#include "engine/dedup.h"
#include "image_file.h"
#include "ops/base.h"
#include "ops/context.h"
#include "util/mapped_file.h"
#include "util/progress.h"
#include "virt/connection.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cloudlet::ops {

struct LaunchDisk {
	std::string target, file; // the instance's qcow2
	uint64_t bytes = 0;        // virtual size
	const store::Part *base_part = nullptr;
};

struct LaunchSource {
	std::string domain, xml; // name, save XML (secure, migratable)
	std::vector<LaunchDisk> disks;
	BaseInfo base;
	std::unique_ptr<qemu::ImageFile> base_memory;
	std::unique_ptr<engine::IndexFile> base_memory_index;
	std::vector<std::unique_ptr<MappedFile>> base_disk_maps;
	std::vector<std::unique_ptr<engine::IndexFile>> base_indexes; // per disk: 4 KiB, 512-step (may be null)
	engine::DedupBase dedup;
};

// Throws CLOUDLET_E_INVALID_ARG when the domain is not an instance of a base
// of the store (base resume writes base.id beside its disks), and
// CLOUDLET_E_CORRUPT when that base does not verify.
void describe_launch(Context &ctx, virt::DomainRef dom, Progress &progress, LaunchSource &out);

// Every 4 KiB chunk a disk's own copy-on-write layer holds (data clusters
// read from their host offsets, explicit zero clusters as zeros), in disk
// order; the last chunk is zero-padded. `f(chunk, data)`.
void for_each_own_chunk(const LaunchDisk &d, const std::function<void(uint64_t, const uint8_t *)> &f);

} // namespace cloudlet::ops
