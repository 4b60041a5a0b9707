// Dirty-chunk accumulation for handoff: chunks waiting to be sent, each
// held once in its newest version. A chunk that changes again while it
// waits is overwritten in place (a hot page is sent once per turn, not once
// per change); order is first-come. Contents live in an unlinked scratch
// file, so memory holds only the index. put() blocks while the queue holds
// `budget` bytes of new chunks — that backpressure is what paces QEMU's
// migration to the link — and fails once the consumer has failed.
#pragma once

#include "util/unique_fd.h"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace cloudlet::engine {

class DirtyQueue {
public:
	DirtyQueue(const std::string &scratch_dir, uint64_t budget_bytes);
	DirtyQueue(const DirtyQueue &) = delete;
	DirtyQueue &operator=(const DirtyQueue &) = delete;

	// Queues (or replaces) the 4096 bytes of `key`, tagged with `version`.
	// Throws CLOUDLET_E_CANCELLED once abort() was called.
	void put(uint64_t key, const uint8_t *data, uint64_t version);
	// The oldest waiting chunk; false once closed and empty (or aborted).
	bool take(uint64_t *key, uint8_t *data, uint64_t *version);
	// No more puts will come; take() drains what is left.
	void close();
	// The consumer failed: wake everyone, later puts throw.
	void abort();
	uint64_t waiting() const;
	// A new bound for put()'s backpressure (at least 16 chunks).
	void set_budget(uint64_t bytes);
	uint64_t replaced() const { return replaced_; } // puts that overwrote a waiting version

private:
	struct Entry {
		uint64_t slot, version;
	};
	void pwrite_slot(uint64_t slot, const uint8_t *data);
	void pread_slot(uint64_t slot, uint8_t *data);
	UniqueFd fd_;
	std::string dir_;
	uint64_t budget_slots_;
	mutable std::mutex mu_;
	std::condition_variable room_, ready_;
	std::deque<uint64_t> order_;
	std::unordered_map<uint64_t, Entry> waiting_;
	std::vector<uint64_t> free_slots_;
	uint64_t next_slot_ = 0, replaced_ = 0;
	bool closed_ = false, aborted_ = false;
};

} // namespace cloudlet::engine
