#include "util/mapped_file.h"

#include "util/error.h"
#include "util/unique_fd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace cloudlet {

MappedFile::MappedFile(const std::string &path, bool sequential) : path_(path) {
	UniqueFd fd = open_for_reading(path); // the mapping outlives it
	struct stat st {};
	if (fstat(fd.get(), &st) != 0)
		fail_errno("cannot stat " + path, errno);
	size_ = static_cast<size_t>(st.st_size);
	if (size_ > 0) {
		void *m = mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd.get(), 0);
		if (m == MAP_FAILED)
			fail_errno("cannot map " + path, errno);
		data_ = static_cast<const uint8_t *>(m);
		if (sequential)
			madvise(m, size_, MADV_SEQUENTIAL);
	}
}

void MappedFile::drop_resident() const {
	if (data_)
		madvise(const_cast<uint8_t *>(data_), size_, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
	if (data_)
		munmap(const_cast<uint8_t *>(data_), size_);
}

} // namespace cloudlet
