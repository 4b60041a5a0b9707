// What a migration stream delivered, page by page: a 64-bit hash of each
// page's newest version. After QEMU has finished a live migration with the
// VM paused, reconcile() compares the VM's real memory against it and hands
// over every page the stream got wrong — the guard against QEMU's lost
// dirty pages under TCG (virt/guest_ram.h says why; docs/capture.md).
// 8 bytes and a bit per guest page.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace cloudlet::engine {

class PageLedger {
public:
	explicit PageLedger(uint64_t total_pages);

	// The newest version of page `linear` is these 4096 bytes (null: all
	// bytes `fill`). Called from one thread at a time, as the stream arrives.
	void record(uint64_t linear, const uint8_t *data, uint8_t fill);

	// Reads pages [first, first + count) through `read(page_offset_bytes,
	// buf, n)` (offsets from `first`'s start) on `threads` threads, and calls
	// `fix(linear, data)` — serialised — for each page whose content is not
	// its newest recorded version, or that has none. Returns how many.
	uint64_t reconcile(uint64_t first, uint64_t count,
	                   const std::function<void(uint64_t offset, uint8_t *buf, size_t n)> &read,
	                   const std::function<void(uint64_t linear, const uint8_t *data)> &fix, unsigned threads = 2);

private:
	std::vector<uint64_t> hashes_;
	std::vector<bool> seen_;
	uint64_t zero_hash_;
	std::mutex fix_mu_;
};

} // namespace cloudlet::engine
