#include "engine/codec_chooser.h"

#include <algorithm>
#include <chrono>

namespace cloudlet::engine {

std::string CodecChoice::name() const { return std::string(chunk::codec_name(codec)) + "-" + std::to_string(level); }

double CodecChooser::Estimate::delivered_bps(double link_bps) const {
	double cpu = cpu_bps > 0 ? cpu_bps : 1e12;
	if (link_bps <= 0)
		return cpu; // an unmeasured link is assumed not to be the limit
	return std::min(cpu, link_bps / std::max(ratio, 1e-6));
}

void CodecChooser::observe(const uint8_t *raw, size_t n) {
	if (!adaptive_ || n == 0 || batches_++ % kTrialEvery != 0)
		return;
	using chunk::Codec;
	static const CodecChoice kCandidates[] = {
	    {Codec::Zstd, 1}, {Codec::Zstd, 3}, {Codec::Zstd, 9}, {Codec::Lzma, 1}, {Codec::Lzma, 6}};
	size_t sample = std::min<size_t>(n, 256u << 10);
	std::vector<Estimate> measured;
	std::vector<uint8_t> out;
	for (const auto &c : kCandidates) {
		auto t0 = std::chrono::steady_clock::now();
		chunk::compress_block(c.codec, c.level, raw, sample, out);
		double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
		Estimate e;
		e.choice = c;
		e.cpu_bps = s > 0 ? double(sample) / s : 1e12;
		e.ratio = double(std::min(out.size(), sample)) / double(sample);
		measured.push_back(e);
	}
	choose(std::move(measured));
}

void CodecChooser::choose(std::vector<Estimate> measured) {
	if (!adaptive_ || measured.empty())
		return;
	estimates_ = std::move(measured);
	const Estimate *best = &estimates_[0];
	for (const auto &e : estimates_) {
		double a = e.delivered_bps(link_bps_), b = best->delivered_bps(link_bps_);
		// Within 5 %: the smaller output wins (it leaves the link freer).
		if (a > b * 1.05 || (a > b * 0.95 && e.ratio < best->ratio))
			best = &e;
	}
	if (best->choice.codec != current_.codec || best->choice.level != current_.level)
		switches_++;
	current_ = best->choice;
}

} // namespace cloudlet::engine
