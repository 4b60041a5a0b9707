#include "postcopy_stream.h"

#include "migration_stream.h"
#include "stream_emitter.h"
#include "util/error.h"

namespace cloudlet::qemu {

namespace {

// Collects a package's bytes before its length is known.
class BufferSink : public ByteSink {
public:
	void write(const uint8_t *data, size_t n) override { buf.insert(buf.end(), data, data + n); }
	std::vector<uint8_t> buf;
};

void command(Emitter &e, uint16_t cmd, uint16_t len) {
	e.u8(kVmCommand);
	e.be16(cmd);
	e.be16(len);
}

// QEMU refuses a package over 16 MiB (MAX_VM_CMD_PACKAGED_SIZE in 7.2: 1 << 24).
constexpr size_t kMaxPackage = 1u << 24;

} // namespace

void PostcopyWriter::begin() {
	writer_.head();
	Emitter e(out_);
	command(e, kCmdOpenReturnPath, 0);
	command(e, kCmdPing, 4);
	e.be32(kPingSetup);
	// Every RAM block in a stream we write has 4 KiB pages (the summary is
	// the OR of the page sizes), and so has the x86 target.
	command(e, kCmdPostcopyAdvise, 16);
	e.be64(kTargetPageSize);
	e.be64(kTargetPageSize);
	writer_.ram_setup();
}

void PostcopyWriter::start(const std::vector<uint8_t> &device_state) {
	size_t end = device_sections_end(device_state);
	if (end == std::string::npos || end == 0)
		throw Error(CLOUDLET_E_CORRUPT, "the device state does not end with QEMU's EOF marker");
	BufferSink pkg;
	Emitter p(pkg);
	command(p, kCmdPostcopyListen, 0);
	p.bytes(device_state.data(), end);
	command(p, kCmdPing, 4);
	p.be32(kPingDevicesLoaded);
	command(p, kCmdPostcopyRun, 0);
	if (pkg.buf.size() > kMaxPackage)
		throw Error(CLOUDLET_E_UNSUPPORTED, "the device state (" + std::to_string(end) +
		                                        " bytes) is larger than QEMU's postcopy package limit of 16 MiB");
	Emitter e(out_);
	// QEMU 7.2 takes a LISTEN straight after ADVISE as "a rare case" and
	// prepares the discard there, which sets its postcopy state back from
	// LISTENING to DISCARD: its loader then never places pages atomically
	// and the first fault deadlocks it (savevm.c, postcopy-ram.c). QEMU's
	// own source always discards first. So do we: the first page, which
	// holds nothing yet, so the discard changes nothing.
	const std::string &first = info_.blocks.front().name;
	command(e, kCmdPostcopyRamDiscard, static_cast<uint16_t>(1 + 1 + first.size() + 1 + 16));
	e.u8(0); // discard format version
	e.str8(first);
	e.u8(0); // the name's terminator
	e.be64(0);
	e.be64(kTargetPageSize);
	command(e, kCmdPackaged, 4);
	e.be32(static_cast<uint32_t>(pkg.buf.size()));
	e.bytes(pkg.buf.data(), pkg.buf.size());
}

void PostcopyWriter::end() {
	Emitter e(out_);
	e.u8(kSectionEnd);
	e.be32(info_.ram_section_id);
	e.be64(kRamEos);
	e.footer(info_.ram_section_id);
	e.u8(kVmEof);
}

namespace {

uint16_t be16(Reader &r, const char *field) {
	uint16_t hi = r.u8(field);
	return static_cast<uint16_t>((hi << 8) | r.u8(field));
}

} // namespace

bool ReturnPathReader::next(ReturnMessage &m) {
	if (r_.at_end())
		return false;
	uint64_t at = r_.offset();
	m = ReturnMessage{};
	m.type = be16(r_, "a return-path message type");
	uint16_t len = be16(r_, "a return-path message length");
	auto want = [&](uint16_t n) {
		if (len != n)
			r_.fail_at(at, "return-path message " + std::to_string(m.type) + " has length " + std::to_string(len) +
			                   ", not " + std::to_string(n));
	};
	switch (m.type) {
	case kRpShut:
	case kRpPong:
		want(4);
		m.value = r_.be32("a return-path value");
		return true;
	case kRpReqPagesId:
	case kRpReqPages: {
		if (m.type == kRpReqPages)
			want(12);
		else if (len < 14)
			r_.fail_at(at, "REQ_PAGES_ID is " + std::to_string(len) + " bytes, too short for a block name");
		uint64_t offset = r_.be64("a requested offset");
		uint32_t bytes = r_.be32("a requested length");
		if (m.type == kRpReqPagesId) {
			std::string name = r_.short_string("a requested block's name");
			if (len != 13 + name.size())
				r_.fail_at(at, "REQ_PAGES_ID's length " + std::to_string(len) + " does not match its block name");
			block_ = -1;
			for (size_t b = 0; b < info_.blocks.size(); b++)
				if (info_.blocks[b].name == name)
					block_ = static_cast<int>(b);
			if (block_ < 0)
				r_.fail_at(at, "page request for RAM block '" + name + "', which this stream does not have");
		} else if (block_ < 0) {
			r_.fail_at(at, "REQ_PAGES before any REQ_PAGES_ID named a block");
		}
		const RamBlock &b = info_.blocks[static_cast<size_t>(block_)];
		if (offset % kTargetPageSize || bytes == 0 || bytes % kTargetPageSize || offset >= b.length ||
		    bytes > b.length - offset)
			r_.fail_at(at, "page request " + std::to_string(offset) + "+" + std::to_string(bytes) + " is outside '" +
			                   b.name + "' (" + std::to_string(b.length) + " bytes) or not page-aligned");
		m.first_page = b.first_page + offset / kTargetPageSize;
		m.pages = bytes / kTargetPageSize;
		return true;
	}
	default:
		r_.fail_at(at, "unexpected return-path message type " + std::to_string(m.type));
	}
}

} // namespace cloudlet::qemu
