// An incremental parser for QEMU's migration stream. It pulls bytes from a
// Reader (file, pipe, socket) and emits RAM page events as they arrive,
// never holding the stream: a live migration's repeated passes come through
// as repeated events for the same page, the later superseding the earlier.
// Everything that is not RAM (device state: the FULL sections, the EOF
// marker and the JSON description) is passed through byte-exact as opaque
// data, because QEMU gives those sections no length we could skip by.
#pragma once

#include "byte_reader.h"
#include "migration_stream.h"

#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet::qemu {

struct RamBlock {
	std::string name;     // "pc.ram", "vga.vram", "/rom@etc/acpi/tables" ...
	uint64_t length = 0;  // bytes (used_length)
	uint64_t first_page = 0; // linear page number of its first page
	uint64_t pages() const { return (length + kTargetPageSize - 1) / kTargetPageSize; }
};

// Whether two streams' RAM blocks line up page for page (same names and
// lengths in the same order): only then is a page of one "the same page" of
// the other.
bool same_ram_layout(const std::vector<RamBlock> &a, const std::vector<RamBlock> &b);

// What the stream says about itself, everything except page contents.
struct StreamInfo {
	uint32_t version = 0;
	std::string machine_type;           // from the configuration section
	std::vector<uint8_t> config_section; // the configuration section, raw
	uint32_t ram_section_id = 0, ram_instance_id = 0, ram_version = 0;
	std::vector<RamBlock> blocks;       // in stream order; linear pages follow it
	uint64_t total_pages = 0;
	uint64_t ram_sections = 0;          // START + PART + END sections seen
	// Everything after RAM (device sections, EOF marker, JSON description),
	// byte-exact. The parser must hold it anyway to check that it ends.
	std::vector<uint8_t> device_state;
};

class StreamSink {
public:
	virtual ~StreamSink() = default;
	// The block table has been read (before any page).
	virtual void on_ram_blocks(const StreamInfo &) {}
	// One version of one page. `data` is the page (4096 bytes, valid only
	// during the call) or null for a ZERO record, whose fill byte is `fill`.
	// `section` counts RAM sections from 0 (START); a later one supersedes.
	virtual void on_page(uint32_t block, uint64_t linear_page, const uint8_t *data, uint8_t fill,
	                     uint64_t section) = 0;
	// The RAM section's END begins: QEMU writes it once it has stopped the
	// VM for the last pass (its pages follow). A live migration's VM is
	// paused from here on.
	virtual void on_final_pass() {}
};

struct ParseLimits {
	uint64_t max_ram_bytes = 1ull << 40;          // 1 TiB of guest RAM
	uint32_t max_blocks = 512;
	uint64_t max_device_state = 256ull << 20;     // 256 MiB
};

// Parses a whole stream from the reader's position. Throws
// CLOUDLET_E_CORRUPT (naming the offset) on malformed input and
// CLOUDLET_E_UNSUPPORTED on valid features we do not handle.
StreamInfo parse_stream(Reader &r, StreamSink &sink, const ParseLimits &limits = {});

// The device-state tail, split where possible into its sections with the
// help of the JSON description QEMU appends after the EOF marker.
struct DeviceSection {
	std::string name;
	uint32_t instance_id = 0, version_id = 0, section_id = 0;
	uint64_t offset = 0, length = 0; // within the tail
};
struct DeviceStateLayout {
	std::vector<DeviceSection> sections;
	bool split = false;          // sections located exactly
	std::string description_json; // the VMDESCRIPTION trailer, "" if none
	std::string problem;         // why not split, if not
};
DeviceStateLayout split_device_state(const std::vector<uint8_t> &tail);

// Where the device sections of a device state end: the offset of its EOF
// marker, or std::string::npos when the tail does not end as QEMU ends it.
// Postcopy sends the sections alone, inside its package.
size_t device_sections_end(const std::vector<uint8_t> &tail);

} // namespace cloudlet::qemu
