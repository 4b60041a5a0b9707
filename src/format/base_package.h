// The one-file base package (`base export` / `base import`,
// docs/formats/base-package.md): a self-describing header with the
// manifest, every part as 1 MiB blocks (all-zero blocks carry no data, so
// sparse disks stay small), and a trailer with the SHA-256 of everything
// before it. Written and read as a stream; nothing is staged in memory.
#pragma once

#include "byte_reader.h"
#include "store/manifest.h"
#include "util/progress.h"

#include <string>

namespace cloudlet::format {

struct PackageHeader {
	std::string id, name, manifest; // manifest: the exact bytes of manifest.json
};

// Streams the package to `fd`. Parts are read from `dir`.
void write_base_package(int fd, const std::string &out_name, const PackageHeader &h, const store::Manifest &m,
                        const std::string &dir, Progress &progress);

// The most any part may declare, derived from the manifest's memory size,
// the disks' sizes and the formats (docs/formats/base-package.md, "Part
// sizes"). Checked before any work that grows with a declared size.
struct PartBounds {
	static constexpr uint64_t kMaxMemoryBytes = 1ull << 40;  // guest RAM (the stream parser's limit)
	static constexpr uint64_t kOtherRamBytes = 1ull << 30;   // RAM blocks beyond guest RAM: video, ROMs, ACPI
	static constexpr uint64_t kMetaBytes = 1ull << 20;       // memory image metadata besides device state and index
	static constexpr uint64_t kMaxDiskBytes = 16ull << 40;   // one disk
	static constexpr uint64_t kMaxDomainXml = 16ull << 20;   // what resume and synthesis read
	static constexpr uint64_t kMaxBootFile = 1ull << 30;     // kernel, initrd
	static uint64_t memory_pages(uint64_t memory_bytes);     // linear pages of all RAM blocks, at most
	static uint64_t memory_image(uint64_t memory_bytes);     // memory.cltmem
	static uint64_t index_file(uint32_t kind, uint64_t bytes); // exact size of a chunk index, kind 1-3
};

// Refuses (CLOUDLET_E_CORRUPT, naming the part and the bound) a manifest
// whose parts declare more than PartBounds allows, a role this library
// does not know (_UNSUPPORTED), or an index without its disk.
void check_part_sizes(const store::Manifest &m, const std::string &what);

// Reads only a package's header: magic, version, the manifest, checked to
// hash to the ID the header names, its part sizes in bounds. The parts are not read (nothing says
// they match until read_base_package has hashed them).
PackageHeader read_base_package_header(qemu::Reader &r);

// Reads a package, creating its files in `dir` (which must be empty).
// Checks, before trusting anything: magic, version, sizes; that the
// manifest hashes to the ID; its part sizes (check_part_sizes, before any
// part is read); every part against its SHA-256 and size; the
// trailer. Throws CLOUDLET_E_CORRUPT (with the offset) or _UNSUPPORTED.
PackageHeader read_base_package(qemu::Reader &r, const std::string &dir, Progress &progress);

} // namespace cloudlet::format
