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

// Reads only a package's header: magic, version, the manifest, checked to
// hash to the ID the header names. The parts are not read (nothing says
// they match until read_base_package has hashed them).
PackageHeader read_base_package_header(qemu::Reader &r);

// Reads a package, creating its files in `dir` (which must be empty).
// Checks, before trusting anything: magic, version, sizes; that the
// manifest hashes to the ID; every part against its SHA-256 and size; the
// trailer. Throws CLOUDLET_E_CORRUPT (with the offset) or _UNSUPPORTED.
PackageHeader read_base_package(qemu::Reader &r, const std::string &dir, Progress &progress);

} // namespace cloudlet::format
