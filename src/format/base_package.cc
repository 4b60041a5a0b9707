#include "format/base_package.h"

#include "chunk/content_digest.h"
#include "chunk/sha256.h"
#include "migration_stream.h"
#include "stream_parser.h"
#include "util/error.h"
#include "util/fd_io.h"
#include "util/json.h"
#include "util/sparse_file.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace cloudlet::format {

namespace {

constexpr char kMagic[8] = {'C', 'L', 'T', 'B', 'P', 'K', 'G', '1'};
constexpr char kEnd[8] = {'C', 'L', 'T', 'B', 'E', 'N', 'D', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kBlock = 1 << 20;
constexpr uint32_t kMaxHeader = 4u << 20;

// Writes to the fd and hashes what it wrote.
class Out {
public:
	Out(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
	void write(const void *p, size_t n, bool hash = true) {
		if (hash)
			sha_.update(p, n);
		write_all(fd_, p, n, name_);
	}
	void le32(uint32_t v) {
		uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
		write(b, 4);
	}
	chunk::Sha256 &sha() { return sha_; }

private:
	int fd_;
	std::string name_;
	chunk::Sha256 sha_;
};

} // namespace

void write_base_package(int fd, const std::string &out_name, const PackageHeader &h, const store::Manifest &m,
                        const std::string &dir, Progress &progress) {
	Out out(fd, out_name);
	Json hdr(json_object_new_object());
	json_object_object_add(hdr.get(), "id", json_object_new_string(h.id.c_str()));
	json_object_object_add(hdr.get(), "name", json_object_new_string(h.name.c_str()));
	json_object_object_add(hdr.get(), "manifest", json_object_new_string_len(h.manifest.data(), static_cast<int>(h.manifest.size())));
	std::string text = json_object_to_json_string_ext(hdr.get(), JSON_C_TO_STRING_PLAIN);
	out.write(kMagic, 8);
	out.le32(kVersion);
	out.le32(static_cast<uint32_t>(text.size()));
	out.write(text.data(), text.size());
	std::vector<uint8_t> buf(kBlock);
	uint64_t done = 0, total = m.total_bytes();
	for (const auto &p : m.parts) {
		std::string path = dir + "/" + p.file;
		int in = open(path.c_str(), O_RDONLY | O_CLOEXEC);
		if (in < 0)
			fail_errno("cannot open " + path, errno);
		posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
		chunk::DigestBuilder part_digest;
		try {
			DataExtents ext(in, p.size, path);
			for (uint64_t off = 0; off < p.size;) {
				size_t want = static_cast<size_t>(std::min<uint64_t>(kBlock, p.size - off));
				uint8_t kind = 0;
				if (!ext.hole(off, off + want)) { // holes are not read
					pread_full(in, buf.data(), want, off, path + " (shorter than its manifest entry?)");
					kind = chunk::all_zero(buf.data(), want) ? 0 : 1;
				}
				if (kind)
					part_digest.update(buf.data(), want);
				else
					part_digest.zeros(want);
				out.write(&kind, 1);
				if (kind)
					out.write(buf.data(), want);
				off += want;
				done += want;
				progress.report("export", done, total);
			}
		} catch (...) {
			close(in);
			throw;
		}
		close(in);
		// The package must carry what the manifest promises.
		if (part_digest.finish() != p.digest)
			fail(CLOUDLET_E_CORRUPT, path + " no longer matches the base's manifest; not exported");
	}
	std::string digest = out.sha().hex();
	out.write(kEnd, 8, false);
	out.write(digest.data(), digest.size(), false);
}

uint64_t PartBounds::memory_pages(uint64_t memory_bytes) {
	return (memory_bytes + qemu::kTargetPageSize - 1) / qemu::kTargetPageSize + kOtherRamBytes / qemu::kTargetPageSize;
}

uint64_t PartBounds::memory_image(uint64_t memory_bytes) {
	// docs/formats/memory-image.md: the header page, a data slot and an
	// index entry per page at most, the device state as the stream parser
	// bounds it, and the block table and configuration section.
	uint64_t pages = memory_pages(memory_bytes);
	return qemu::kTargetPageSize + pages * (qemu::kTargetPageSize + 8) + qemu::ParseLimits{}.max_device_state +
	       kMetaBytes;
}

uint64_t PartBounds::index_file(uint32_t kind, uint64_t bytes) {
	// docs/formats/base.md, "Chunk index": 64 header bytes, 16 per entry.
	constexpr uint64_t chunk = 4096, step = 512;
	uint64_t entries = kind == 3 ? (bytes < chunk ? 0 : (bytes - chunk) / step + 1) : (bytes + chunk - 1) / chunk;
	return 64 + 16 * entries;
}

void check_part_sizes(const store::Manifest &m, const std::string &what) {
	auto too_big = [&](const store::Part &p, uint64_t bound, const std::string &why) {
		fail(CLOUDLET_E_CORRUPT, what + ": part " + p.file + " declares " + std::to_string(p.size) +
		                             " bytes, more than the " + std::to_string(bound) + " bytes " + why);
	};
	if (m.memory_bytes == 0 || m.memory_bytes > PartBounds::kMaxMemoryBytes)
		fail(CLOUDLET_E_CORRUPT, what + ": memory_bytes " + std::to_string(m.memory_bytes) + " is outside 1.." +
		                             std::to_string(PartBounds::kMaxMemoryBytes));
	for (const auto &p : m.parts) {
		if (p.role == "memory") {
			uint64_t b = PartBounds::memory_image(m.memory_bytes);
			if (p.size > b)
				too_big(p, b, "a memory image of " + std::to_string(m.memory_bytes) + " bytes of guest RAM can take");
		} else if (p.role == "memory-index") {
			uint64_t b = PartBounds::index_file(1, PartBounds::memory_pages(m.memory_bytes) * qemu::kTargetPageSize);
			if (p.size > b)
				too_big(p, b, "the index of " + std::to_string(m.memory_bytes) + " bytes of guest RAM can take");
		} else if (p.role == "disk") {
			if (p.target.empty())
				fail(CLOUDLET_E_CORRUPT, what + ": disk part " + p.file + " has no target");
			if (p.size > PartBounds::kMaxDiskBytes)
				too_big(p, PartBounds::kMaxDiskBytes, "this library accepts for one disk");
			for (size_t i = 0; const store::Part *d = m.find("disk", i); i++)
				if (d != &p && d->target == p.target)
					fail(CLOUDLET_E_CORRUPT, what + ": disk '" + p.target + "' is listed twice");
		} else if (p.role == "disk-index" || p.role == "disk-sector-index") {
			const store::Part *disk = nullptr;
			for (size_t i = 0; const store::Part *d = m.find("disk", i); i++)
				if (d->target == p.target)
					disk = d;
			if (!disk || p.target.empty())
				fail(CLOUDLET_E_CORRUPT, what + ": part " + p.file + " indexes disk '" + p.target +
				                             "', which the manifest does not list");
			uint64_t want = PartBounds::index_file(p.role == "disk-index" ? 2 : 3, std::min(disk->size, PartBounds::kMaxDiskBytes));
			if (p.size != want)
				fail(CLOUDLET_E_CORRUPT, what + ": part " + p.file + " declares " + std::to_string(p.size) +
				                             " bytes; the index of the " + std::to_string(disk->size) + "-byte disk " +
				                             disk->file + " is " + std::to_string(want) + " bytes");
		} else if (p.role == "domain-xml") {
			if (p.size > PartBounds::kMaxDomainXml)
				too_big(p, PartBounds::kMaxDomainXml, "a base's domain XML may have");
		} else if (p.role == "kernel" || p.role == "initrd") {
			if (p.size > PartBounds::kMaxBootFile)
				too_big(p, PartBounds::kMaxBootFile, "a boot file may have");
		} else {
			fail(CLOUDLET_E_UNSUPPORTED, what + ": part " + p.file + " has the role '" + p.role +
			                                 "', which this library does not know");
		}
	}
}

namespace {

// The header, fed to `all` (the trailer's hash covers it).
PackageHeader read_header(qemu::Reader &r, chunk::Sha256 &all) {
	const uint8_t *magic = r.bytes(8, "package magic");
	all.update(magic, 8);
	if (memcmp(magic, kMagic, 8) != 0)
		r.fail_at(0, "not a libcloudlet base package (bad magic)");
	auto le32 = [&](const char *what) {
		const uint8_t *b = r.bytes(4, what);
		all.update(b, 4);
		return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
	};
	uint32_t version = le32("package version");
	if (version != kVersion)
		fail(CLOUDLET_E_UNSUPPORTED, "base package version " + std::to_string(version) + " (this library reads 1)");
	uint32_t hlen = le32("header length");
	if (hlen == 0 || hlen > kMaxHeader)
		r.fail("header length " + std::to_string(hlen) + " is out of range");
	std::string text;
	while (text.size() < hlen) {
		size_t n = std::min<size_t>(hlen - text.size(), kBlock);
		const uint8_t *b = r.bytes(n, "package header");
		all.update(b, n);
		text.append(reinterpret_cast<const char *>(b), n);
	}
	Json hdr(json_tokener_parse(text.c_str()));
	json_object *id = nullptr, *name = nullptr, *man = nullptr;
	if (!hdr || !json_object_object_get_ex(hdr.get(), "id", &id) || !json_object_object_get_ex(hdr.get(), "name", &name) ||
	    !json_object_object_get_ex(hdr.get(), "manifest", &man) || !json_object_is_type(man, json_type_string))
		r.fail("package header is not the expected JSON object");
	PackageHeader h;
	h.id = json_object_get_string(id);
	h.name = json_object_get_string(name);
	h.manifest.assign(json_object_get_string(man), static_cast<size_t>(json_object_get_string_len(man)));
	if (chunk::sha256_hex(h.manifest.data(), h.manifest.size()) != h.id)
		fail(CLOUDLET_E_CORRUPT, "the package's manifest does not hash to its base ID " + h.id);
	return h;
}

} // namespace

PackageHeader read_base_package_header(qemu::Reader &r) {
	chunk::Sha256 unused;
	PackageHeader h = read_header(r, unused);
	check_part_sizes(store::Manifest::parse(h.manifest, "package manifest"), "package manifest");
	return h;
}

PackageHeader read_base_package(qemu::Reader &r, const std::string &dir, Progress &progress) {
	chunk::Sha256 all;
	PackageHeader h = read_header(r, all);
	store::Manifest m = store::Manifest::parse(h.manifest, "package manifest");
	check_part_sizes(m, "package manifest"); // before a block is read or a file made
	uint64_t done = 0, total = m.total_bytes();
	for (const auto &p : m.parts) {
		std::string path = dir + "/" + p.file;
		int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			fail_errno("cannot create " + path, errno);
		chunk::DigestBuilder part_digest;
		try {
			for (uint64_t off = 0; off < p.size;) {
				size_t want = static_cast<size_t>(std::min<uint64_t>(kBlock, p.size - off));
				const uint8_t *k = r.bytes(1, "block kind");
				all.update(k, 1);
				if (*k == 0) {
					part_digest.zeros(want); // a hole, not written
				} else if (*k == 1) {
					const uint8_t *b = r.bytes(want, "block data");
					all.update(b, want);
					part_digest.update(b, want);
					pwrite_all(fd, b, want, off, path);
				} else {
					r.fail("block kind " + std::to_string(*k) + " in part " + p.file + " is neither 0 nor 1");
				}
				off += want;
				done += want;
				progress.report("import", done, total);
			}
			if (ftruncate(fd, static_cast<off_t>(p.size)) != 0)
				fail_errno("cannot size " + path, errno);
			if (fsync(fd) != 0)
				fail_errno("cannot sync " + path, errno);
		} catch (...) {
			close(fd);
			throw;
		}
		close(fd);
		std::string got = part_digest.finish();
		if (got != p.digest)
			fail(CLOUDLET_E_CORRUPT, "part " + p.file + " in the package has the digest " + got +
			                             ", its manifest says " + p.digest);
	}
	std::string digest = all.hex();
	const uint8_t *end = r.bytes(8, "package trailer");
	if (memcmp(end, kEnd, 8) != 0)
		r.fail("package trailer missing");
	const uint8_t *d = r.bytes(64, "package digest");
	if (memcmp(d, digest.data(), 64) != 0)
		r.fail("package digest does not match its contents");
	if (!r.at_end())
		r.fail("data after the package trailer");
	return h;
}

} // namespace cloudlet::format
