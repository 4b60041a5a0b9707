// Adaptive compression for handoff: which codec and level deliver the most
// VM state per second through a link of the measured rate with the CPU
// this sender has. Compression and sending overlap (the socket buffers), so
// a choice delivers raw bytes at min(compression speed, link rate / ratio);
// candidates are re-measured on a sample of the batch every few batches, as
// the data and the link change.
#pragma once

#include "chunk/block_codec.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet::engine {

struct CodecChoice {
	chunk::Codec codec = chunk::Codec::Zstd;
	int level = chunk::default_level(chunk::Codec::Zstd);
	std::string name() const;
};

class CodecChooser {
public:
	// adaptive false: always `fixed`.
	CodecChooser(bool adaptive, CodecChoice fixed) : adaptive_(adaptive), current_(fixed) {}
	CodecChoice current() const { return current_; }

	struct Estimate {
		CodecChoice choice;
		double cpu_bps = 0; // raw bytes compressed per second
		double ratio = 1;   // stored / raw
		double delivered_bps(double link_bps) const;
	};

	// Before encoding a batch: every kTrialEvery batches, times every
	// candidate on up to 256 KiB of `raw` and choose()s from what it measured.
	void observe(const uint8_t *raw, size_t n);
	// Takes the candidate delivering the most for the link as the current
	// choice; within 5 % of each other the smaller output wins (it leaves
	// the link freer). A change of choice counts as a switch. Nothing
	// changes when not adaptive or `measured` is empty.
	void choose(std::vector<Estimate> measured);
	// The link's rate in bytes per second (0: unknown: assumed fast).
	void set_link_rate(double bytes_per_s) { link_bps_ = bytes_per_s; }
	uint64_t switches() const { return switches_; }
	const std::vector<Estimate> &estimates() const { return estimates_; } // the last choose()'s
	static constexpr unsigned kTrialEvery = 32;

private:
	bool adaptive_;
	CodecChoice current_;
	double link_bps_ = 0;
	unsigned batches_ = 0;
	uint64_t switches_ = 0;
	std::vector<Estimate> estimates_;
};

} // namespace cloudlet::engine
