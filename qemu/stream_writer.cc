#include "stream_writer.h"

#include "migration_stream.h"
#include "stream_emitter.h"
#include "util/error.h"

#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace cloudlet::qemu {

FdSink::~FdSink() {
	try {
		flush();
	} catch (...) {
		// Destructors do not throw; callers flush() explicitly to see errors.
	}
}

void FdSink::write(const uint8_t *data, size_t n) {
	if (buf_.size() + n > buf_.capacity())
		flush();
	if (n >= buf_.capacity()) {
		for (size_t off = 0; off < n;) {
			ssize_t w = ::write(fd_, data + off, n - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				fail_errno("cannot write " + name_, errno);
			off += static_cast<size_t>(w);
		}
		written_ += n;
		return;
	}
	buf_.insert(buf_.end(), data, data + n);
}

void FdSink::flush() {
	for (size_t off = 0; off < buf_.size();) {
		ssize_t w = ::write(fd_, buf_.data() + off, buf_.size() - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			fail_errno("cannot write " + name_, errno);
		off += static_cast<size_t>(w);
	}
	written_ += buf_.size();
	buf_.clear();
}


void StreamWriter::begin() {
	head();
	ram_setup();
}

void StreamWriter::head() {
	if (info_.blocks.empty())
		throw Error(CLOUDLET_E_INVALID_ARG, "memory image has no RAM blocks");
	Emitter e(out_);
	e.be32(kStreamMagic);
	e.be32(kStreamVersion);
	e.bytes(info_.config_section.data(), info_.config_section.size());
}

void StreamWriter::ram_setup() {
	Emitter e(out_);
	uint64_t total = 0;
	for (const auto &b : info_.blocks)
		total += b.length;
	e.u8(kSectionStart);
	e.be32(info_.ram_section_id);
	e.str8("ram");
	e.be32(info_.ram_instance_id);
	e.be32(info_.ram_version);
	e.be64(total | kRamMemSize);
	for (const auto &b : info_.blocks) {
		e.str8(b.name);
		e.be64(b.length);
	}
	e.be64(kRamEos);
	e.footer(info_.ram_section_id);
}

void StreamWriter::all_pages(const PageProvider &img, Target target) {
	Emitter e(out_);
	e.u8(kSectionPart);
	e.be32(info_.ram_section_id);
	for (const auto &b : info_.blocks) {
		bool skip_zero = target == kFreshRam && b.name == kMainRamBlock;
		bool named = false; // the first record of a block names it, the rest continue it
		for (uint64_t i = 0; i < b.pages(); i++) {
			const uint8_t *d = img.page(b.first_page + i);
			if (!d && skip_zero)
				continue;
			uint64_t flags = uint64_t(d ? kRamPage : kRamZero) | (named ? uint64_t(kRamContinue) : 0);
			e.be64(i * kTargetPageSize | flags);
			if (!named)
				e.str8(b.name);
			named = true;
			if (d)
				e.bytes(d, kTargetPageSize);
			else
				e.u8(0);
		}
	}
	e.be64(kRamEos);
	e.footer(info_.ram_section_id);
}

void StreamWriter::pages(const PageProvider &img, const std::vector<uint64_t> &linear) {
	if (linear.empty())
		return;
	Emitter e(out_);
	e.u8(kSectionPart);
	e.be32(info_.ram_section_id);
	size_t block = SIZE_MAX;
	for (uint64_t p : linear) {
		// The block holding page p (blocks are in linear order).
		size_t b = block == SIZE_MAX ? 0 : block;
		while (b + 1 < info_.blocks.size() && info_.blocks[b + 1].first_page <= p)
			b++;
		while (b > 0 && info_.blocks[b].first_page > p)
			b--;
		const RamBlock &rb = info_.blocks[b];
		if (p < rb.first_page || p >= rb.first_page + rb.pages())
			throw Error(CLOUDLET_E_INVALID_ARG, "page " + std::to_string(p) + " is in no RAM block");
		const uint8_t *d = img.page(p);
		bool same = b == block;
		uint64_t flags = uint64_t(d ? kRamPage : kRamZero) | (same ? uint64_t(kRamContinue) : 0);
		e.be64((p - rb.first_page) * kTargetPageSize | flags);
		if (!same)
			e.str8(rb.name);
		if (d)
			e.bytes(d, kTargetPageSize);
		else
			e.u8(0);
		block = b;
	}
	e.be64(kRamEos);
	e.footer(info_.ram_section_id);
}

void StreamWriter::end(const std::vector<uint8_t> &device) {
	if (device.empty())
		throw Error(CLOUDLET_E_INVALID_ARG, "memory image has no device state");
	Emitter e(out_);
	e.u8(kSectionEnd);
	e.be32(info_.ram_section_id);
	e.be64(kRamEos);
	e.footer(info_.ram_section_id);
	e.bytes(device.data(), device.size());
}

void write_stream(ByteSink &out, const PageProvider &img, StreamWriter::Target target) {
	if (img.stream_info().blocks.empty() || img.stream_info().device_state.empty())
		throw Error(CLOUDLET_E_INVALID_ARG, "memory image has no RAM blocks or no device state");
	StreamWriter w(out, img.stream_info());
	w.begin();
	w.all_pages(img, target);
	w.end(img.stream_info().device_state);
}

} // namespace cloudlet::qemu
