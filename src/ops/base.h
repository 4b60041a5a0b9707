// Base VMs (docs/base-vms.md): create one from a running domain, keep it in
// the store, verify it, export/import it as one file, resume instances.
#pragma once

#include "ops/context.h"
#include "store/base_store.h"
#include "util/progress.h"
#include "virt/nic_swap.h"

#include <string>
#include <vector>

namespace cloudlet::ops {

struct BaseInfo {
	store::CatalogEntry entry;
	store::Manifest manifest;
	std::string dir;
	std::string status = "unverified"; // "ok", "corrupt", "unverified"
	std::string problem;                // why corrupt
	// Disk space the parts take (st_blocks x 512; sparse disks take less
	// than their size), per part in manifest order, and in all.
	std::vector<uint64_t> part_allocated;
	uint64_t allocated_bytes = 0;
};

// Fills part_allocated/allocated_bytes from the files (a missing one: 0).
void add_allocation(BaseInfo &info);

// A verified-by-construction description of a base just added to the store.
BaseInfo stored_base_info(const store::BaseStore &st, const store::CatalogEntry &e, const store::Manifest &m);

struct BaseCreateOptions {
	std::string name;  // "" : the source domain's name
	bool stop = false; // shut the source domain off afterwards
};

BaseInfo base_create(Context &ctx, const std::string &domain, const BaseCreateOptions &o, Progress &progress);
std::vector<BaseInfo> base_list(Context &ctx);
// Checks the base: the manifest hashes to the ID and every part matches it.
// Files whose stamp is unchanged since the last check are trusted unless
// `full`. Corruption is reported in status/problem, not thrown.
BaseInfo base_show(Context &ctx, const std::string &id_or_name, bool full, Progress &progress);
void base_remove(Context &ctx, const std::string &id_or_name);
void base_export(Context &ctx, const std::string &id_or_name, const std::string &path, Progress &progress);
BaseInfo base_import(Context &ctx, const std::string &path, const std::string &name, Progress &progress);
// What a package holds, from its header and manifest (ID checked against the
// manifest); the parts are not read, so status is "unverified".
BaseInfo base_package_inspect(const std::string &path);

struct ResumeOptions {
	std::string name;      // "" : "<base name>-<8 hex>"
	std::string virt_type; // "" : the context's preference (kvm if usable, else qemu)
	std::string uuid;      // "" : a new random one; else canonical (checked by domain_uuid)
	virt::NicRequest nic;  // the fresh NICs (checked before anything exists)
};

struct InstanceInfo {
	std::string name, uuid, base_id, dir, virt_type;
	std::vector<std::string> old_macs, macs; // NICs replaced after resume
	double seconds = 0, restore_seconds = 0, nic_seconds = 0;
};

InstanceInfo base_resume(Context &ctx, const std::string &id_or_name, const ResumeOptions &o, Progress &progress);

// Removes the folder of an instance (resumed, synthesized or received)
// whose domain no longer runs: CLOUDLET_E_BUSY while it does.
void instance_remove(Context &ctx, const std::string &name);

} // namespace cloudlet::ops
