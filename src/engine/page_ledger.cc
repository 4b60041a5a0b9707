#include "engine/page_ledger.h"

#include "util/error.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <thread>

namespace cloudlet::engine {

namespace {
constexpr size_t kPage = 4096;
constexpr size_t kReadPages = 256; // 1 MiB per read: few system calls, cache-sized
} // namespace

PageLedger::PageLedger(uint64_t total_pages) : hashes_(total_pages, 0), seen_(total_pages, false) {
	uint8_t zero[kPage] = {};
	zero_hash_ = XXH3_64bits(zero, kPage);
}

void PageLedger::record(uint64_t linear, const uint8_t *data, uint8_t fill) {
	if (linear >= hashes_.size())
		return; // the parser has already refused such a page
	uint64_t h;
	if (data) {
		h = XXH3_64bits(data, kPage);
	} else if (fill == 0) {
		h = zero_hash_;
	} else {
		uint8_t f[kPage];
		memset(f, fill, kPage);
		h = XXH3_64bits(f, kPage);
	}
	hashes_[linear] = h;
	seen_[linear] = true;
}

uint64_t PageLedger::reconcile(uint64_t first, uint64_t count,
                               const std::function<void(uint64_t, uint8_t *, size_t)> &read,
                               const std::function<void(uint64_t, const uint8_t *)> &fix, unsigned threads) {
	if (first > hashes_.size() || count > hashes_.size() - first)
		fail(CLOUDLET_E_INTERNAL, "page ledger: pages beyond the stream's RAM");
	threads = std::max(1u, threads);
	std::vector<uint64_t> fixed(threads, 0);
	std::vector<std::exception_ptr> errors(threads);
	// Interleaved 1 MiB stripes: both threads stay on cold memory evenly.
	auto work = [&](unsigned t) {
		try {
			std::vector<uint8_t> buf(kReadPages * kPage);
			for (uint64_t at = uint64_t(t) * kReadPages; at < count; at += uint64_t(threads) * kReadPages) {
				uint64_t n = std::min<uint64_t>(kReadPages, count - at);
				read(at * kPage, buf.data(), n * kPage);
				for (uint64_t i = 0; i < n; i++) {
					uint64_t linear = first + at + i;
					const uint8_t *p = buf.data() + i * kPage;
					// seen_ is only read here: no writer runs during reconcile.
					if (seen_[linear] && hashes_[linear] == XXH3_64bits(p, kPage))
						continue;
					std::lock_guard<std::mutex> l(fix_mu_);
					fix(linear, p);
					fixed[t]++;
				}
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
	uint64_t total = 0;
	for (uint64_t f : fixed)
		total += f;
	return total;
}

} // namespace cloudlet::engine
