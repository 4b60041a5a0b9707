// What a migration stream delivered, page by page: a 64-bit hash of each
// page's newest version. After QEMU has finished a live migration with the
// VM paused, reconcile() compares the VM's real memory against it and hands
// over every page the stream got wrong — the guard against QEMU's lost
// dirty pages under TCG (virt/guest_ram.h says why; docs/capture.md).
// 16 bytes and a bit per guest page. Beside virt/guest_ram and the
// migration capture (virt/migration_capture.h), the only ones that use it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace cloudlet::virt {

class PageLedger {
public:
	using ReadFn = std::function<void(uint64_t offset, uint8_t *buf, size_t n)>;
	using FixFn = std::function<void(uint64_t linear, const uint8_t *data)>;

	explicit PageLedger(uint64_t total_pages);

	// The newest version of page `linear` is these 4096 bytes (null: all
	// bytes `fill`). Called from one thread at a time, as the stream arrives.
	void record(uint64_t linear, const uint8_t *data, uint8_t fill);

	// Hashes the real content of pages [first, first + count), read through
	// `read(page_offset_bytes, buf, n)` (offsets from `first`'s start), on
	// `threads` threads. Call it once the VM is paused for good: QEMU's
	// final pass may still be streaming (record() may run meanwhile; the two
	// touch different tables), so the check costs the downtime nothing.
	// Stops early, leaving no hashes, once `*stop` is set.
	void hash_paused(uint64_t first, uint64_t count, const ReadFn &read, unsigned threads = 2,
	                 const std::atomic<bool> *stop = nullptr);

	// After the stream has ended, with the VM still paused: calls
	// `fix(linear, data)` — serialised — for each page of the range whose
	// content is not its newest recorded version, or that has none, and
	// returns how many. Uses the hashes of hash_paused() over the same range
	// if it completed; hashes the range itself otherwise.
	uint64_t reconcile(uint64_t first, uint64_t count, const ReadFn &read, const FixFn &fix, unsigned threads = 2);

	// Forgets hash_paused()'s hashes (the VM ran again after them).
	void forget_paused();

private:
	std::vector<uint64_t> hashes_;
	std::vector<bool> seen_;
	std::vector<uint64_t> paused_; // hash_paused()'s result, page by page
	uint64_t paused_first_ = 0, paused_count_ = 0;
	bool paused_valid_ = false;
	uint64_t zero_hash_;
};

} // namespace cloudlet::virt
