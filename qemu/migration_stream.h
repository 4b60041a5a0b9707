// QEMU's migration stream ("QEVM", version 3) as QEMU 7.2 and later write it:
// the numbers that define the format. QEMU's migration/savevm.c and
// migration/ram.c are the specification; docs/formats/qemu-stream.md says
// what we read, write and refuse.
#pragma once

#include <cstdint>

namespace cloudlet::qemu {

constexpr uint32_t kStreamMagic = 0x5145564d; // "QEVM"
constexpr uint32_t kStreamVersion = 3;

// Section types (one byte each).
enum SectionType : uint8_t {
	kVmEof = 0x00,
	kSectionStart = 0x01,
	kSectionPart = 0x02,
	kSectionEnd = 0x03,
	kSectionFull = 0x04,
	kSubsection = 0x05,
	kVmDescription = 0x06,
	kVmConfiguration = 0x07,
	kVmCommand = 0x08,
	kSectionFooter = 0x7e,
};

// RAM record flags: the low bits of the be64 that starts every record (the
// high bits are the page's offset within its block).
enum RamFlag : uint64_t {
	kRamFull = 0x01,          // obsolete
	kRamZero = 0x02,          // followed by one fill byte
	kRamMemSize = 0x04,       // block table (setup)
	kRamPage = 0x08,          // followed by a whole page
	kRamEos = 0x10,           // end of this section's RAM data
	kRamContinue = 0x20,      // same block as the previous record: no block name
	kRamXbzrle = 0x40,        // delta-encoded page: refused
	kRamHook = 0x80,          // RDMA hook: refused
	kRamCompressPage = 0x100, // zlib-compressed page: refused
	kRamMultifdFlush = 0x200, // multifd sync point (QEMU >= 8.1): carries no data
};

constexpr uint64_t kTargetPageSize = 4096; // x86 TARGET_PAGE_SIZE
constexpr uint64_t kRamFlagMask = kTargetPageSize - 1;

} // namespace cloudlet::qemu
