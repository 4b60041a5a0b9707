#include "virt/page_ledger.h"

#include "chunk/chunk_record.h"
#include "util/error.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <thread>

namespace cloudlet::virt {

using chunk::kChunkSize; // a guest page is a memory chunk

namespace {
constexpr size_t kReadPages = 256; // 1 MiB per read: few system calls, cache-sized
} // namespace

PageLedger::PageLedger(uint64_t total_pages) : hashes_(total_pages, 0), seen_(total_pages, false) {
	uint8_t zero[kChunkSize] = {};
	zero_hash_ = XXH3_64bits(zero, kChunkSize);
}

void PageLedger::record(uint64_t linear, const uint8_t *data, uint8_t fill) {
	if (linear >= hashes_.size())
		return; // the parser has already refused such a page
	uint64_t h;
	if (data) {
		h = XXH3_64bits(data, kChunkSize);
	} else if (fill == 0) {
		h = zero_hash_;
	} else {
		uint8_t f[kChunkSize];
		memset(f, fill, kChunkSize);
		h = XXH3_64bits(f, kChunkSize);
	}
	hashes_[linear] = h;
	seen_[linear] = true;
}

void PageLedger::hash_paused(uint64_t first, uint64_t count, const ReadFn &read, unsigned threads,
                             const std::atomic<bool> *stop) {
	if (first > hashes_.size() || count > hashes_.size() - first)
		fail(CLOUDLET_E_INTERNAL, "page ledger: pages beyond the stream's RAM");
	paused_valid_ = false;
	paused_.assign(count, 0);
	threads = std::max(1u, threads);
	std::vector<std::exception_ptr> errors(threads);
	std::atomic<bool> stopped{false};
	// Interleaved 1 MiB stripes: both threads stay on cold memory evenly.
	auto work = [&](unsigned t) {
		try {
			std::vector<uint8_t> buf(kReadPages * kChunkSize);
			for (uint64_t at = uint64_t(t) * kReadPages; at < count; at += uint64_t(threads) * kReadPages) {
				if (stop && stop->load(std::memory_order_relaxed)) {
					stopped = true;
					return;
				}
				uint64_t n = std::min<uint64_t>(kReadPages, count - at);
				read(at * kChunkSize, buf.data(), n * kChunkSize);
				for (uint64_t i = 0; i < n; i++)
					paused_[at + i] = XXH3_64bits(buf.data() + i * kChunkSize, kChunkSize);
			}
		} catch (...) {
			errors[t] = std::current_exception();
		}
	};
	std::vector<std::thread> pool;
	for (unsigned t = 1; t < threads; t++)
		pool.emplace_back(work, t);
	work(0);
	for (auto &th : pool)
		th.join();
	for (auto &e : errors)
		if (e)
			std::rethrow_exception(e);
	if (stopped)
		return;
	paused_first_ = first;
	paused_count_ = count;
	paused_valid_ = true;
}

void PageLedger::forget_paused() {
	paused_valid_ = false;
}

uint64_t PageLedger::reconcile(uint64_t first, uint64_t count, const ReadFn &read, const FixFn &fix,
                               unsigned threads) {
	if (!paused_valid_ || paused_first_ != first || paused_count_ != count)
		hash_paused(first, count, read, threads);
	uint64_t fixed = 0;
	std::vector<uint8_t> page(kChunkSize);
	for (uint64_t i = 0; i < count; i++) {
		uint64_t linear = first + i;
		if (seen_[linear] && hashes_[linear] == paused_[i])
			continue;
		read(i * kChunkSize, page.data(), kChunkSize);
		fix(linear, page.data());
		fixed++;
	}
	return fixed;
}

} // namespace cloudlet::virt
