// The memory pages of a VM that runs before its overlay has arrived
// (docs/early-start.md): a page the overlay names may be sent to QEMU only
// once its record is applied; every other page is the base's and final at
// once. The overlay's reader marks arrivals, the postcopy source takes
// them; thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

namespace cloudlet::engine {

class ArrivingPages {
public:
	// `named`: the overlay's start block bitmap of `pages` pages (bit p of
	// byte p / 8); a shorter bitmap names nothing beyond its end.
	ArrivingPages(uint64_t pages, const std::vector<uint8_t> &named);

	// The reader, after applying page p's record.
	void arrived(uint64_t p);
	// The reader: every record has been applied (the footer checked).
	void complete();
	// The reader gave up: whoever waits stops.
	void abandon();

	bool ready(uint64_t p) const;
	// Moves the pages that arrived since the last call into `out` (in
	// arrival order). Returns true once complete() was called and nothing
	// is left to take.
	bool take(std::vector<uint64_t> &out);
	// Waits up to `d` for an arrival, completion or abandon.
	void wait(std::chrono::milliseconds d);
	bool abandoned() const;
	uint64_t waiting() const; // named pages not arrived yet

private:
	mutable std::mutex m_;
	std::condition_variable cv_;
	std::vector<uint8_t> pending_; // bit set: named, not arrived yet
	std::vector<uint64_t> arrivals_;
	uint64_t waiting_ = 0;
	bool complete_ = false, abandoned_ = false;
};

} // namespace cloudlet::engine
