#include "stream_parser.h"

#include "util/error.h"

#include <json-c/json.h>

#include <cstring>
#include <unordered_map>

namespace cloudlet::qemu {

namespace {

void put_be32(std::vector<uint8_t> &o, uint32_t v) {
	for (int s = 24; s >= 0; s -= 8)
		o.push_back(static_cast<uint8_t>(v >> s));
}

// Configuration section (type byte already read): the machine type, then
// optional subsections (QEMU 7.x+). Recorded raw so the writer re-emits it.
void read_configuration(Reader &r, StreamInfo &info) {
	std::vector<uint8_t> &raw = info.config_section;
	raw.push_back(kVmConfiguration);
	uint32_t len = r.be32("the machine type length");
	if (len == 0 || len > 256)
		r.fail("machine type length " + std::to_string(len) + " is outside 1..256");
	const uint8_t *p = r.bytes(len, "the machine type");
	info.machine_type.assign(reinterpret_cast<const char *>(p), len);
	put_be32(raw, len);
	raw.insert(raw.end(), p, p + len);
	while (r.peek() == kSubsection) {
		uint64_t at = r.offset();
		r.u8("a configuration subsection");
		std::string name = r.short_string("the configuration subsection name");
		uint32_t version = r.be32("the configuration subsection version");
		raw.push_back(kSubsection);
		raw.push_back(static_cast<uint8_t>(name.size()));
		raw.insert(raw.end(), name.begin(), name.end());
		put_be32(raw, version);
		if (name == "configuration/target-page-bits") {
			uint32_t bits = r.be32("target-page-bits");
			if (bits != 12)
				r.fail("target page bits " + std::to_string(bits) + ": only 4 KiB pages are supported");
			put_be32(raw, bits);
		} else if (name == "configuration/capabilities") {
			uint32_t n = r.be32("the capability count");
			if (n > 64)
				r.fail("capability count " + std::to_string(n) + " is above 64");
			put_be32(raw, n);
			for (uint32_t i = 0; i < n; i++) {
				std::string cap = r.short_string("a capability name");
				// These change the RAM section's layout.
				if (cap == "postcopy-ram" || cap == "x-ignore-shared" || cap == "mapped-ram")
					throw Error(CLOUDLET_E_UNSUPPORTED, "QEMU stream uses migration capability '" + cap +
					                                        "', which libcloudlet does not support");
				raw.push_back(static_cast<uint8_t>(cap.size()));
				raw.insert(raw.end(), cap.begin(), cap.end());
			}
		} else if (name == "configuration/uuid") {
			const uint8_t *u = r.bytes(16, "the configuration UUID");
			raw.insert(raw.end(), u, u + 16);
		} else {
			r.fail_at(at, "unknown configuration subsection '" + name + "'");
		}
	}
}

// Tracks and checks the footer QEMU writes after each section.
void read_footer(Reader &r, uint32_t section_id) {
	if (r.peek() != kSectionFooter)
		return; // streams from QEMU without section footers
	r.u8("a section footer");
	uint32_t id = r.be32("the section footer id");
	if (id != section_id)
		r.fail("section footer names section " + std::to_string(id) + ", expected " +
		       std::to_string(section_id));
}

class RamParser {
public:
	RamParser(Reader &r, StreamSink &sink, StreamInfo &info, const ParseLimits &limits)
	    : r_(r), sink_(sink), info_(info), limits_(limits) {}

	// Reads RAM records up to and including EOS.
	void section(bool setup) {
		uint64_t section = info_.ram_sections++;
		for (;;) {
			uint64_t at = r_.offset();
			uint64_t word = r_.be64("a RAM record header");
			uint64_t flags = word & kRamFlagMask;
			uint64_t addr = word & ~kRamFlagMask;
			uint64_t kind = flags & ~uint64_t(kRamContinue);
			switch (kind) {
			case kRamMemSize:
				if (!setup || !info_.blocks.empty())
					r_.fail_at(at, "RAM block table outside the RAM setup section");
				block_table(word & ~uint64_t(kRamMemSize));
				break;
			case kRamEos:
				return;
			case kRamMultifdFlush:
				break;
			case kRamZero:
			case kRamPage: {
				uint32_t b = block_for(flags, at);
				const RamBlock &blk = info_.blocks[b];
				if (addr >= blk.length)
					r_.fail_at(at, "page offset " + std::to_string(addr) + " is beyond RAM block '" +
					                   blk.name + "' (" + std::to_string(blk.length) + " bytes)");
				uint64_t linear = blk.first_page + addr / kTargetPageSize;
				if (kind == kRamZero) {
					uint8_t fill = r_.u8("a zero page's fill byte");
					sink_.on_page(b, linear, nullptr, fill, section);
				} else {
					const uint8_t *data = r_.bytes(kTargetPageSize, "a RAM page");
					sink_.on_page(b, linear, data, 0, section);
				}
				break;
			}
			case kRamXbzrle:
				throw Error(CLOUDLET_E_UNSUPPORTED,
				            "QEMU stream offset " + std::to_string(at) +
				                ": XBZRLE-encoded page; disable the xbzrle migration capability");
			case kRamCompressPage:
				throw Error(CLOUDLET_E_UNSUPPORTED,
				            "QEMU stream offset " + std::to_string(at) +
				                ": compressed page; disable the compress migration capability");
			case kRamHook:
				throw Error(CLOUDLET_E_UNSUPPORTED,
				            "QEMU stream offset " + std::to_string(at) + ": RDMA hook record; RDMA is not supported");
			default:
				r_.fail_at(at, "unknown RAM record flags 0x" + hex(flags));
			}
		}
	}

private:
	static std::string hex(uint64_t v) {
		char b[20];
		snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
		return b;
	}

	void block_table(uint64_t total) {
		if (total > limits_.max_ram_bytes)
			r_.fail("total RAM " + std::to_string(total) + " bytes is above the limit of " +
			        std::to_string(limits_.max_ram_bytes));
		uint64_t sum = 0;
		while (sum < total) {
			if (info_.blocks.size() >= limits_.max_blocks)
				r_.fail("more than " + std::to_string(limits_.max_blocks) + " RAM blocks");
			RamBlock b;
			b.name = r_.short_string("a RAM block name");
			if (b.name.empty())
				r_.fail("empty RAM block name");
			b.length = r_.be64("a RAM block length");
			if (b.length == 0 || b.length % kTargetPageSize != 0 || b.length > total - sum)
				r_.fail("RAM block '" + b.name + "' has length " + std::to_string(b.length) +
				        " (not a positive multiple of 4096 within the total " + std::to_string(total) + ")");
			if (by_name_.count(b.name))
				r_.fail("RAM block '" + b.name + "' listed twice");
			b.first_page = info_.total_pages;
			info_.total_pages += b.pages();
			sum += b.length;
			by_name_[b.name] = static_cast<uint32_t>(info_.blocks.size());
			info_.blocks.push_back(b);
		}
		sink_.on_ram_blocks(info_);
	}

	uint32_t block_for(uint64_t flags, uint64_t at) {
		if (flags & kRamContinue) {
			if (current_ < 0)
				r_.fail_at(at, "page record continues a block, but no block was named yet");
			return static_cast<uint32_t>(current_);
		}
		std::string name = r_.short_string("a RAM block name");
		auto it = by_name_.find(name);
		if (it == by_name_.end())
			r_.fail_at(at, "page for unknown RAM block '" + name + "'");
		current_ = it->second;
		return it->second;
	}

	Reader &r_;
	StreamSink &sink_;
	StreamInfo &info_;
	const ParseLimits &limits_;
	std::unordered_map<std::string, uint32_t> by_name_;
	long current_ = -1;
};

// Where the JSON description starts: the tail ends with EOF (0x00),
// VMDESCRIPTION (0x06), a be32 length and exactly that many bytes of JSON.
size_t find_description(const std::vector<uint8_t> &t) {
	for (size_t i = t.size() >= 6 ? t.size() - 5 : 0; i >= 1 && t.size() - i <= (64u << 20); i--) {
		if (t[i] == kVmDescription && t[i - 1] == kVmEof && i + 5 <= t.size()) {
			uint32_t len = (uint32_t(t[i + 1]) << 24) | (uint32_t(t[i + 2]) << 16) | (uint32_t(t[i + 3]) << 8) | t[i + 4];
			if (len == t.size() - i - 5 && len > 0 && t[i + 5] == '{' && t.back() == '}')
				return i + 5;
		}
	}
	return std::string::npos;
}

// QEMU ends the device state with the EOF marker, then (unless the machine
// suppresses it) the description. Without one, the EOF must follow a footer.
bool device_state_complete(const std::vector<uint8_t> &t) {
	if (find_description(t) != std::string::npos)
		return true;
	return t.size() >= 6 && t.back() == kVmEof && t[t.size() - 6] == kSectionFooter;
}

} // namespace

StreamInfo parse_stream(Reader &r, StreamSink &sink, const ParseLimits &limits) {
	StreamInfo info;
	if (r.be32("the stream magic") != kStreamMagic)
		r.fail_at(r.offset() - 4, "not a QEMU migration stream (magic is not QEVM)");
	info.version = r.be32("the stream version");
	if (info.version != kStreamVersion)
		throw Error(CLOUDLET_E_UNSUPPORTED, "QEMU stream version " + std::to_string(info.version) +
		                                        " is not supported (only version 3)");
	RamParser ram(r, sink, info, limits);
	bool ram_started = false, ram_ended = false;
	for (;;) {
		uint64_t at = r.offset();
		int t = r.peek();
		if (t < 0)
			r.fail("input ends before the device state (the stream is truncated)");
		r.u8("a section type");
		switch (t) {
		case kVmConfiguration:
			if (ram_started || !info.config_section.empty())
				r.fail_at(at, "configuration section out of place");
			read_configuration(r, info);
			continue;
		case kSectionStart:
		case kSectionFull: {
			uint32_t id = r.be32("a section id");
			std::string idstr = r.short_string("a section name");
			uint32_t instance = r.be32("a section instance id");
			uint32_t version = r.be32("a section version");
			if (idstr == "ram") {
				if (t != kSectionStart || ram_started)
					r.fail_at(at, "unexpected RAM section header");
				ram_started = true;
				info.ram_section_id = id;
				info.ram_instance_id = instance;
				info.ram_version = version;
				ram.section(true);
				if (info.blocks.empty())
					r.fail_at(at, "RAM setup section without a block table");
				read_footer(r, id);
				continue;
			}
			if (t == kSectionStart)
				throw Error(CLOUDLET_E_UNSUPPORTED, "QEMU stream offset " + std::to_string(at) +
				                                        ": iterative section '" + idstr +
				                                        "' (only RAM is supported; no block migration)");
			if (!ram_ended)
				throw Error(CLOUDLET_E_UNSUPPORTED, "QEMU stream offset " + std::to_string(at) +
				                                        ": device section '" + idstr +
				                                        "' before the end of RAM");
			// Device state from here to the end: passed through opaque. The
			// header we just read is re-encoded exactly as it was written.
			std::vector<uint8_t> head;
			head.push_back(static_cast<uint8_t>(t));
			put_be32(head, id);
			head.push_back(static_cast<uint8_t>(idstr.size()));
			head.insert(head.end(), idstr.begin(), idstr.end());
			put_be32(head, instance);
			put_be32(head, version);
			// Kept (bounded) in the result, and checked at the end: a
			// truncated stream must not pass for a complete one.
			std::vector<uint8_t> &tail = info.device_state;
			tail = head;
			const uint8_t *p;
			while (size_t n = r.take_available(&p)) {
				if (tail.size() + n > limits.max_device_state)
					r.fail("device state is larger than " + std::to_string(limits.max_device_state) + " bytes");
				tail.insert(tail.end(), p, p + n);
			}
			if (!device_state_complete(tail))
				r.fail("the device state does not end with QEMU's EOF marker and description "
				       "(the stream is truncated or corrupt)");
			return info;
		}
		case kSectionPart:
		case kSectionEnd: {
			uint32_t id = r.be32("a section id");
			if (!ram_started || id != info.ram_section_id || ram_ended)
				r.fail_at(at, "section " + std::to_string(id) + " continues, but it was not started (or ended)");
			if (t == kSectionEnd)
				sink.on_final_pass();
			ram.section(false);
			read_footer(r, id);
			if (t == kSectionEnd)
				ram_ended = true;
			continue;
		}
		case kVmEof:
			r.fail_at(at, "EOF marker without any device state");
		case kVmCommand:
			throw Error(CLOUDLET_E_UNSUPPORTED, "QEMU stream offset " + std::to_string(at) +
			                                        ": migration command (postcopy/colo streams are not supported)");
		default:
			r.fail_at(at, "unknown section type 0x" + std::to_string(t));
		}
	}
}

namespace {

uint32_t get_be32(const std::vector<uint8_t> &v, size_t at) {
	return (uint32_t(v[at]) << 24) | (uint32_t(v[at + 1]) << 16) | (uint32_t(v[at + 2]) << 8) | v[at + 3];
}

// Does a FULL section header for `name` start at `at`? Returns its length.
size_t header_at(const std::vector<uint8_t> &t, size_t at, const std::string &name) {
	size_t n = 1 + 4 + 1 + name.size() + 8;
	if (at + n > t.size() || t[at] != kSectionFull || t[at + 5] != name.size() ||
	    memcmp(t.data() + at + 6, name.data(), name.size()) != 0)
		return 0;
	return n;
}

} // namespace

size_t device_sections_end(const std::vector<uint8_t> &tail) {
	size_t json_at = find_description(tail);
	if (json_at != std::string::npos)
		return json_at - 6;
	if (device_state_complete(tail))
		return tail.size() - 1;
	return std::string::npos;
}

DeviceStateLayout split_device_state(const std::vector<uint8_t> &tail) {
	DeviceStateLayout out;
	size_t json_at = find_description(tail);
	if (json_at == std::string::npos) {
		out.problem = "no JSON description at the end of the device state";
		return out;
	}
	out.description_json.assign(reinterpret_cast<const char *>(tail.data() + json_at), tail.size() - json_at);
	json_object *doc = json_tokener_parse(out.description_json.c_str());
	json_object *devices = nullptr;
	if (!doc || !json_object_object_get_ex(doc, "devices", &devices) ||
	    !json_object_is_type(devices, json_type_array)) {
		json_object_put(doc);
		out.problem = "the JSON description has no device list";
		return out;
	}
	size_t eof_at = json_at - 6; // position of the EOF marker
	size_t pos = 0;
	size_t n = json_object_array_length(devices);
	for (size_t k = 0; k < n; k++) {
		json_object *d = json_object_array_get_idx(devices, k), *v = nullptr;
		DeviceSection s;
		if (json_object_object_get_ex(d, "name", &v))
			s.name = json_object_get_string(v);
		size_t hl = header_at(tail, pos, s.name);
		if (!hl) {
			out.problem = "device section " + std::to_string(k) + " ('" + s.name + "') not found where expected";
			break;
		}
		s.offset = pos;
		s.section_id = get_be32(tail, pos + 1);
		s.instance_id = get_be32(tail, pos + hl - 8);
		s.version_id = get_be32(tail, pos + hl - 4);
		// The section ends with its footer, followed by the next header (or EOF).
		std::string next;
		if (k + 1 < n) {
			json_object *nd = json_object_array_get_idx(devices, k + 1), *nv = nullptr;
			if (json_object_object_get_ex(nd, "name", &nv))
				next = json_object_get_string(nv);
		}
		size_t end = 0;
		for (size_t f = pos + hl; f + 5 <= eof_at; f++) {
			if (tail[f] != kSectionFooter || get_be32(tail, f + 1) != s.section_id)
				continue;
			if ((k + 1 < n && header_at(tail, f + 5, next)) || (k + 1 == n && f + 5 == eof_at)) {
				end = f + 5;
				break;
			}
		}
		if (!end) {
			out.problem = "end of device section '" + s.name + "' not found";
			break;
		}
		s.length = end - pos;
		out.sections.push_back(s);
		pos = end;
	}
	json_object_put(doc);
	out.split = out.problem.empty() && pos == eof_at;
	if (!out.split && out.problem.empty())
		out.problem = "device sections do not reach the EOF marker";
	return out;
}

bool same_ram_layout(const std::vector<RamBlock> &a, const std::vector<RamBlock> &b) {
	if (a.size() != b.size())
		return false;
	for (size_t i = 0; i < a.size(); i++)
		if (a[i].name != b[i].name || a[i].length != b[i].length)
			return false;
	return true;
}

} // namespace cloudlet::qemu
