#include "image_file.h"

#include "util/error.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cloudlet::qemu {

namespace {

constexpr char kMagic[8] = {'C', 'L', 'T', 'M', 'E', 'M', 'v', '1'};
constexpr uint32_t kFormatVersion = 1;
constexpr uint64_t kHeaderSize = 4096;

void put_le(std::vector<uint8_t> &o, uint64_t v, int bytes) {
	for (int i = 0; i < bytes; i++)
		o.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint64_t get_le(const uint8_t *p, int bytes) {
	uint64_t v = 0;
	for (int i = bytes - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void pwrite_all(int fd, const uint8_t *data, size_t n, uint64_t off, const std::string &path) {
	while (n > 0) {
		ssize_t w = pwrite(fd, data, n, static_cast<off_t>(off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			fail_errno("cannot write " + path, errno);
		data += w;
		n -= static_cast<size_t>(w);
		off += static_cast<uint64_t>(w);
	}
}

} // namespace

ImageFileWriter::ImageFileWriter(const std::string &path) : path_(path), data_offset_(kHeaderSize) {
	fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd_ < 0)
		fail_errno("cannot create " + path, errno);
}

ImageFileWriter::~ImageFileWriter() {
	if (fd_ >= 0)
		close(fd_);
}

void ImageFileWriter::on_ram_blocks(const StreamInfo &info) {
	index_.assign(info.total_pages, 0);
}

void ImageFileWriter::on_page(uint32_t, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t) {
	uint8_t filled[kTargetPageSize];
	if (!data && fill) {
		memset(filled, fill, sizeof filled);
		data = filled;
	}
	if (!data) {
		index_[linear] = 0; // its old slot, if any, stays unused
		return;
	}
	if (index_[linear] == 0)
		index_[linear] = ++slots_;
	pwrite_all(fd_, data, kTargetPageSize, data_offset_ + (index_[linear] - 1) * kTargetPageSize, path_);
}

void ImageFileWriter::finish(const StreamInfo &info) {
	uint64_t meta_offset = data_offset_ + slots_ * kTargetPageSize;
	std::vector<uint8_t> meta;
	put_le(meta, info.blocks.size(), 4);
	for (const auto &b : info.blocks) {
		put_le(meta, b.name.size(), 2);
		meta.insert(meta.end(), b.name.begin(), b.name.end());
		put_le(meta, b.length, 8);
	}
	put_le(meta, info.config_section.size(), 4);
	meta.insert(meta.end(), info.config_section.begin(), info.config_section.end());
	put_le(meta, info.device_state.size(), 8);
	meta.insert(meta.end(), info.device_state.begin(), info.device_state.end());
	while (meta.size() % 8)
		meta.push_back(0);
	uint64_t data_pages = 0;
	for (uint64_t e : index_) {
		put_le(meta, e, 8);
		data_pages += e != 0;
	}
	pwrite_all(fd_, meta.data(), meta.size(), meta_offset, path_);

	std::vector<uint8_t> h;
	h.insert(h.end(), kMagic, kMagic + 8);
	put_le(h, kFormatVersion, 4);
	put_le(h, kTargetPageSize, 4);
	put_le(h, index_.size(), 8);
	put_le(h, slots_, 8);
	put_le(h, data_pages, 8);
	put_le(h, data_offset_, 8);
	put_le(h, meta_offset, 8);
	put_le(h, meta.size(), 8);
	put_le(h, info.ram_section_id, 4);
	put_le(h, info.ram_instance_id, 4);
	put_le(h, info.ram_version, 4);
	put_le(h, info.version, 4);
	h.resize(kHeaderSize, 0);
	pwrite_all(fd_, h.data(), h.size(), 0, path_);
	if (fsync(fd_) != 0)
		fail_errno("cannot sync " + path_, errno);
}

ImageFile::ImageFile(const std::string &path) : path_(path), file_(path) {
	map_ = file_.data();
	size_ = file_.size();
	auto bad = [&](uint64_t at, const std::string &why) {
		throw Error(CLOUDLET_E_CORRUPT, path + " offset " + std::to_string(at) + ": " + why);
	};
	if (size_ < kHeaderSize)
		bad(0, "too short for a memory image (" + std::to_string(size_) + " bytes)");
	{
		const uint8_t *h = map_;
		if (memcmp(h, kMagic, 8) != 0)
			bad(0, "not a libcloudlet memory image (bad magic)");
		if (get_le(h + 8, 4) != kFormatVersion)
			throw Error(CLOUDLET_E_UNSUPPORTED, path + ": memory image format version " +
			                                        std::to_string(get_le(h + 8, 4)) + " is not supported");
		if (get_le(h + 12, 4) != kTargetPageSize)
			bad(12, "page size is not 4096");
		uint64_t total = get_le(h + 16, 8);
		data_slots_ = get_le(h + 24, 8);
		data_pages_ = get_le(h + 32, 8);
		data_offset_ = get_le(h + 40, 8);
		uint64_t meta_offset = get_le(h + 48, 8), meta_bytes = get_le(h + 56, 8);
		info_.ram_section_id = static_cast<uint32_t>(get_le(h + 64, 4));
		info_.ram_instance_id = static_cast<uint32_t>(get_le(h + 68, 4));
		info_.ram_version = static_cast<uint32_t>(get_le(h + 72, 4));
		info_.version = static_cast<uint32_t>(get_le(h + 76, 4));
		if (data_offset_ != kHeaderSize || data_slots_ > (size_ - kHeaderSize) / kTargetPageSize ||
		    meta_offset != data_offset_ + data_slots_ * kTargetPageSize || meta_bytes > size_ - meta_offset)
			bad(24, "data or metadata region outside the file");
		if (total > meta_bytes / 8 || data_pages_ > total)
			bad(16, "page count does not fit the metadata");
		const uint8_t *p = map_ + meta_offset, *end = p + meta_bytes;
		auto need = [&](uint64_t n, const char *what) {
			if (static_cast<uint64_t>(end - p) < n)
				bad(static_cast<uint64_t>(p - map_), std::string("metadata ends inside ") + what);
		};
		need(4, "the block count");
		uint64_t nblocks = get_le(p, 4);
		p += 4;
		if (nblocks == 0 || nblocks > 512)
			bad(static_cast<uint64_t>(p - map_) - 4, "block count " + std::to_string(nblocks));
		uint64_t pages = 0;
		for (uint64_t b = 0; b < nblocks; b++) {
			need(2, "a block name length");
			uint64_t nl = get_le(p, 2);
			p += 2;
			need(nl + 8, "a block");
			RamBlock blk;
			blk.name.assign(reinterpret_cast<const char *>(p), nl);
			p += nl;
			blk.length = get_le(p, 8);
			p += 8;
			if (blk.length == 0 || blk.length % kTargetPageSize || blk.length / kTargetPageSize > total - pages)
				bad(static_cast<uint64_t>(p - map_) - 8, "bad length for block '" + blk.name + "'");
			blk.first_page = pages;
			pages += blk.pages();
			info_.blocks.push_back(blk);
		}
		if (pages != total)
			bad(16, "blocks hold " + std::to_string(pages) + " pages, header says " + std::to_string(total));
		info_.total_pages = total;
		need(4, "the configuration length");
		uint64_t cl = get_le(p, 4);
		p += 4;
		need(cl, "the configuration section");
		info_.config_section.assign(p, p + cl);
		p += cl;
		need(8, "the device state length");
		uint64_t dl = get_le(p, 8);
		p += 8;
		need(dl, "the device state");
		info_.device_state.assign(p, p + dl);
		p += dl;
		while ((p - (map_ + meta_offset)) % 8)
			p++;
		need(total * 8, "the page index");
		index_ = p;
		// The machine type, for callers that print it: 0x07, be32 length, name.
		const auto &c = info_.config_section;
		if (c.size() >= 5) {
			size_t n = (size_t(c[1]) << 24) | (size_t(c[2]) << 16) | (size_t(c[3]) << 8) | c[4];
			if (n <= c.size() - 5)
				info_.machine_type.assign(reinterpret_cast<const char *>(c.data() + 5), n);
		}
	}
}

uint64_t ImageFile::slot(uint64_t linear) const {
	if (linear >= info_.total_pages)
		throw Error(CLOUDLET_E_INVALID_ARG, path_ + ": page " + std::to_string(linear) + " is outside the image");
	uint64_t e = get_le(index_ + linear * 8, 8);
	if (e > data_slots_)
		throw Error(CLOUDLET_E_CORRUPT, path_ + ": index entry of page " + std::to_string(linear) +
		                                    " points past the data region");
	return e;
}

const uint8_t *ImageFile::page(uint64_t linear) const {
	uint64_t e = slot(linear);
	return e ? map_ + data_offset_ + (e - 1) * kTargetPageSize : nullptr;
}

} // namespace cloudlet::qemu
