// A base VM's manifest (docs/formats/base.md): what the base is made of,
// each part with its size and content digest (chunk/content_digest.h). The
// base ID is the SHA-256 of the manifest file's bytes, so the ID covers
// every part and the manifest.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet::store {

struct Part {
	std::string file;   // file name inside the base folder
	std::string role;   // "memory", "memory-index", "disk", "disk-index", "domain-xml", "kernel", "initrd"
	std::string target; // disks: the guest's device name ("vda"); else ""
	uint64_t size = 0;
	std::string digest; // chunk::digest_file of the part, 64 hex digits
};

constexpr unsigned kManifestFormat = 2;

struct Manifest {
	unsigned format = kManifestFormat;
	std::string virt_type;  // "qemu" / "kvm" the base was created under
	std::string machine;    // "pc-i440fx-7.2"
	std::string cpu_model;  // the enforced model the memory state was taken with
	uint64_t memory_bytes = 0;
	std::vector<Part> parts;

	// Deterministic text: the same manifest always gives the same bytes.
	std::string to_json() const;
	// Throws CLOUDLET_E_CORRUPT, or _UNSUPPORTED for another format (an
	// older one with a message saying the base must be re-created).
	static Manifest parse(const std::string &text, const std::string &what);
	const Part *find(const std::string &role, size_t nth = 0) const;
	uint64_t total_bytes() const;
};

// A name stored in a manifest must be a plain file name.
bool safe_file_name(const std::string &name);

} // namespace cloudlet::store
