// Whole reads and writes on file descriptors, retried on EINTR and short
// transfers: the one place the library loops over read(2)/write(2).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace cloudlet {

// read(2) retried on EINTR: bytes read (0 at end of file), or -1 with errno.
ssize_t read_some(int fd, void *buf, size_t n);
// Reads until `n` bytes or end of file: the bytes read. Throws naming `what`.
size_t read_full(int fd, void *buf, size_t n, const std::string &what);
// Writes all `n` bytes. Throws naming `what` (EPIPE included).
void write_all(int fd, const void *buf, size_t n, const std::string &what);
// pread(2) of exactly `n` bytes at `offset`; the file ending first is an
// error naming `what` and where it ends.
void pread_full(int fd, void *buf, size_t n, uint64_t offset, const std::string &what);
// pwrite(2) of all `n` bytes at `offset`. Throws naming `what`.
void pwrite_all(int fd, const void *buf, size_t n, uint64_t offset, const std::string &what);
// The rest of the file from the fd's position, at most `max_bytes` of it
// (more is CLOUDLET_E_CORRUPT naming `what`, never silently cut).
std::string read_rest(int fd, size_t max_bytes, const std::string &what);

} // namespace cloudlet
