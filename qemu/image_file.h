// The canonical on-disk memory image (docs/formats/memory-image.md): a
// header, the RAM block table, the configuration section, the opaque device
// state, a page index, and the data pages at page-aligned offsets, so a
// later stage can mmap the file and read any page without reparsing.
#pragma once

#include "memory_image.h"
#include "stream_parser.h"
#include "util/mapped_file.h"

#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet::qemu {

// Anything a stream can be written from: the model in memory or on disk.
class PageProvider {
public:
	virtual ~PageProvider() = default;
	virtual const StreamInfo &stream_info() const = 0; // incl. the device state
	// The page's 4096 bytes, or null when it is all zero.
	virtual const uint8_t *page(uint64_t linear) const = 0;
};

// A sink that writes the image file while the stream is parsed: data pages
// go straight to their slot in the file (a newer version of a page
// overwrites its slot in place); the index and header are written by
// finish(). Memory use: 8 bytes per guest page, not the pages.
class ImageFileWriter : public StreamSink {
public:
	explicit ImageFileWriter(const std::string &path); // creates (0600), truncates
	~ImageFileWriter() override;
	void on_ram_blocks(const StreamInfo &info) override;
	void on_page(uint32_t block, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t section) override;
	// Writes the metadata (blocks, configuration, device state, index) and
	// the header, then fsyncs. `info` is what parse_stream returned.
	void finish(const StreamInfo &info);

private:
	std::string path_;
	int fd_ = -1;
	std::vector<uint64_t> index_; // 0 = zero/unsent, else slot + 1
	uint64_t slots_ = 0, data_offset_ = 0;
};

// A read-only, mmap'ed image file. Validates every offset and size in the
// header against the file before using it.
class ImageFile : public PageProvider {
public:
	explicit ImageFile(const std::string &path);
	ImageFile(const ImageFile &) = delete;
	ImageFile &operator=(const ImageFile &) = delete;

	const StreamInfo &stream_info() const override { return info_; }
	const uint8_t *page(uint64_t linear) const override;
	uint64_t data_pages() const { return data_pages_; }
	// Where page data is in the file: data_slots() pages of 4096 bytes from
	// data_offset(). slot(p): 0 if linear page p is zero, else k for slot
	// k - 1 (checked against data_slots(), so readers by file offset, such
	// as the base's one-pass indexing, agree with page()).
	uint64_t data_offset() const { return data_offset_; }
	uint64_t data_slots() const { return data_slots_; }
	uint64_t slot(uint64_t linear) const;
	// Lets go of the mapped pages read so far (MappedFile::drop_resident):
	// page() pointers stay valid.
	void drop_resident() const { file_.drop_resident(); }

private:
	std::string path_;
	MappedFile file_;
	const uint8_t *map_ = nullptr;
	size_t size_ = 0;
	StreamInfo info_;
	const uint8_t *index_ = nullptr; // little-endian u64 per page
	uint64_t data_offset_ = 0, data_slots_ = 0, data_pages_ = 0;
};

// MemoryImage as a PageProvider.
class MemoryImageProvider : public PageProvider {
public:
	explicit MemoryImageProvider(const MemoryImage &img) : img_(img) {}
	const StreamInfo &stream_info() const override { return img_.info; }
	const uint8_t *page(uint64_t linear) const override { return img_.data(linear); }

private:
	const MemoryImage &img_;
};

} // namespace cloudlet::qemu
