// A whole file mapped read-only (the page cache, shared; nothing copied).
// Used wherever a format is read by random access: memory images, chunk
// indexes, base disks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cloudlet {

class MappedFile {
public:
	// Throws (CLOUDLET_E_NOT_FOUND/_PERMISSION/_IO) if it cannot be opened
	// or mapped. An empty file maps to data() == nullptr, size() == 0.
	explicit MappedFile(const std::string &path, bool sequential = false);
	~MappedFile();
	MappedFile(const MappedFile &) = delete;
	MappedFile &operator=(const MappedFile &) = delete;
	const uint8_t *data() const { return data_; }
	size_t size() const { return size_; }
	const std::string &path() const { return path_; }
	// Unmaps the pages this process has touched (MADV_DONTNEED): they stay
	// in the page cache, pointers stay valid and refault on the next read,
	// and the process's RSS no longer counts them. For readers that walk a
	// file much larger than the memory they should hold.
	void drop_resident() const;

private:
	std::string path_;
	const uint8_t *data_ = nullptr;
	size_t size_ = 0;
};

} // namespace cloudlet
