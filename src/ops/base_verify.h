#pragma once

#include "engine/chunk_index.h"
#include "image_file.h"
#include "ops/base.h"

#include <atomic>

namespace cloudlet::ops {

// Verifies a base; corruption is reported in the result (status "corrupt").
// Parts are re-digested (chunk/content_digest.h) on `threads` threads
// (0: 2) when their stamp changed, or all of them if `full`.
BaseInfo verify_base(store::BaseStore &st, const store::CatalogEntry &e, bool full, Progress &progress,
                     unsigned threads = 0);

// The base's memory, every page checked against the base's index as it is
// read: a page that changed on disk since the last full check cannot slip
// into an instance or a synthesized VM. Throws CLOUDLET_E_CORRUPT.
// Every 64 MiB of pages served, the image's mapped pages are let go of, so
// writing a whole memory (resume, synthesis) does not make the process's
// RSS as large as the memory image; returned pointers stay valid.
class VerifiedPages : public qemu::PageProvider {
public:
	VerifiedPages(const std::string &image, const std::string &index);
	const qemu::StreamInfo &stream_info() const override { return img_.stream_info(); }
	const uint8_t *page(uint64_t p) const override;

private:
	qemu::ImageFile img_;
	engine::IndexFile idx_;
	mutable std::atomic<uint64_t> served_{0};
};

} // namespace cloudlet::ops
