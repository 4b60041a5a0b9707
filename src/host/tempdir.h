// A private temporary directory removed (with its contents) on scope exit.
#pragma once

#include <string>

namespace cloudlet::host {

class TempDir {
public:
	// Creates "<parent>/<prefix>XXXXXX" (parent: $TMPDIR or /tmp when empty).
	explicit TempDir(const std::string &prefix, const std::string &parent = {});
	~TempDir();
	TempDir(const TempDir &) = delete;
	TempDir &operator=(const TempDir &) = delete;
	const std::string &path() const { return path_; }

private:
	std::string path_;
};

// Copies a file (used to give QEMU its own copy of an input, so libvirt's
// relabelling never touches the original). Mode 0644.
void copy_file(const std::string &from, const std::string &to);

} // namespace cloudlet::host
