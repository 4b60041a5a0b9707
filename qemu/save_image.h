// libvirt's QEMU save image header (what `virsh save` writes before the
// QEMU migration stream). Layout, all integers in host byte order:
//   char magic[16]   "LibvirtQemudSave" (complete) / "LibvirtQemudPart" (being written)
//   u32 version      2
//   u32 data_len     bytes of XML (+cookie) that follow, NUL-padded
//   u32 was_running  1 if the domain ran when saved
//   u32 compressed   0 = raw QEMU stream (others: an external compressor)
//   u32 cookie_offset offset of the migration cookie within the data, 0 = none
//   u32 unused[14]
// then data_len bytes (domain XML, NUL, cookie XML, NUL, padding), then the stream.
#pragma once

#include "byte_reader.h"

#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet::qemu {

constexpr size_t kSaveHeaderSize = 92;
constexpr uint32_t kSaveVersion = 2;
constexpr uint32_t kSaveMaxData = 16u << 20; // refuse absurd XML sizes before allocating

struct SaveImageHeader {
	bool complete = true;     // "Save" vs "Part" magic
	uint32_t version = kSaveVersion;
	uint32_t was_running = 0;
	uint32_t compressed = 0;  // 0 raw; 1 gzip, 2 bzip2, 3 xz, 4 lzop, 5 zstd (libvirt's enum)
	std::string domain_xml;
	std::string cookie;       // migration cookie XML, may be empty
	uint64_t stream_offset = 0; // where the QEMU stream starts
	uint32_t data_len = 0;
};

// Reads the header and its data from the reader (leaving it at the stream).
// Throws CLOUDLET_E_CORRUPT on a malformed header and CLOUDLET_E_UNSUPPORTED
// on a compressed image or an unknown version.
SaveImageHeader read_save_header(Reader &r);

// Encodes a header for a raw (uncompressed) image, padding the data the way
// libvirt does so the XML can later be edited in place.
std::vector<uint8_t> encode_save_header(const std::string &domain_xml, const std::string &cookie,
                                        bool was_running);

const char *save_compression_name(uint32_t format);

} // namespace cloudlet::qemu
