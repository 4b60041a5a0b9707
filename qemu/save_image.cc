#include "save_image.h"

#include "util/error.h"

#include <cstring>

namespace cloudlet::qemu {

namespace {
const char kMagicSave[] = "LibvirtQemudSave";
const char kMagicPart[] = "LibvirtQemudPart";

uint32_t host_u32(const uint8_t *p) {
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

void put_u32(std::vector<uint8_t> &out, size_t at, uint32_t v) {
	memcpy(out.data() + at, &v, 4);
}
} // namespace

const char *save_compression_name(uint32_t format) {
	switch (format) {
	case 0: return "raw";
	case 1: return "gzip";
	case 2: return "bzip2";
	case 3: return "xz";
	case 4: return "lzop";
	case 5: return "zstd";
	}
	return "unknown";
}

SaveImageHeader read_save_header(Reader &r) {
	SaveImageHeader h;
	const uint8_t *p = r.bytes(kSaveHeaderSize, "the libvirt save image header");
	if (memcmp(p, kMagicSave, 16) == 0)
		h.complete = true;
	else if (memcmp(p, kMagicPart, 16) == 0)
		h.complete = false;
	else
		r.fail_at(0, "not a libvirt save image (bad magic)");
	h.version = host_u32(p + 16);
	h.data_len = host_u32(p + 20);
	h.was_running = host_u32(p + 24);
	h.compressed = host_u32(p + 28);
	uint32_t cookie_offset = host_u32(p + 32);
	if (h.version != kSaveVersion)
		throw Error(CLOUDLET_E_UNSUPPORTED, "libvirt save image version " + std::to_string(h.version) +
		                                        " is not supported (only version 2)");
	if (h.compressed != 0)
		throw Error(CLOUDLET_E_UNSUPPORTED, std::string("libvirt save image is compressed (") +
		                                        save_compression_name(h.compressed) +
		                                        "); only raw images are supported");
	if (h.was_running > 1)
		r.fail_at(24, "was_running is " + std::to_string(h.was_running));
	if (h.data_len == 0 || h.data_len > kSaveMaxData)
		r.fail_at(20, "XML length " + std::to_string(h.data_len) + " is outside 1.." +
		                  std::to_string(kSaveMaxData));
	if (cookie_offset >= h.data_len && cookie_offset != 0)
		r.fail_at(32, "cookie offset " + std::to_string(cookie_offset) + " is past the XML data");
	std::string data;
	data.reserve(h.data_len);
	for (uint32_t left = h.data_len; left > 0;) {
		uint32_t n = std::min<uint32_t>(left, 1 << 16);
		const uint8_t *d = r.bytes(n, "the domain XML of the save image");
		data.append(reinterpret_cast<const char *>(d), n);
		left -= n;
	}
	size_t xml_end = data.find('\0');
	if (xml_end == std::string::npos)
		r.fail_at(kSaveHeaderSize, "domain XML is not NUL-terminated");
	if (cookie_offset && cookie_offset < xml_end)
		r.fail_at(32, "cookie offset " + std::to_string(cookie_offset) + " is inside the domain XML");
	h.domain_xml = data.substr(0, xml_end);
	if (cookie_offset) {
		size_t cend = data.find('\0', cookie_offset);
		if (cend == std::string::npos)
			r.fail_at(kSaveHeaderSize + cookie_offset, "cookie is not NUL-terminated");
		h.cookie = data.substr(cookie_offset, cend - cookie_offset);
	}
	h.stream_offset = kSaveHeaderSize + h.data_len;
	return h;
}

std::vector<uint8_t> encode_save_header(const std::string &domain_xml, const std::string &cookie,
                                        bool was_running) {
	if (domain_xml.find('\0') != std::string::npos || cookie.find('\0') != std::string::npos)
		throw Error(CLOUDLET_E_INVALID_ARG, "save image XML contains a NUL byte");
	// libvirt leaves room to grow the XML in place (virsh save-image-edit).
	size_t used = domain_xml.size() + 1 + (cookie.empty() ? 0 : cookie.size() + 1);
	size_t data_len = used + 64 * 1024;
	if (data_len > kSaveMaxData)
		throw Error(CLOUDLET_E_INVALID_ARG, "save image XML is too large");
	std::vector<uint8_t> out(kSaveHeaderSize + data_len, 0);
	memcpy(out.data(), kMagicSave, 16);
	put_u32(out, 16, kSaveVersion);
	put_u32(out, 20, static_cast<uint32_t>(data_len));
	put_u32(out, 24, was_running ? 1 : 0);
	put_u32(out, 28, 0);
	put_u32(out, 32, cookie.empty() ? 0 : static_cast<uint32_t>(domain_xml.size() + 1));
	memcpy(out.data() + kSaveHeaderSize, domain_xml.data(), domain_xml.size());
	if (!cookie.empty())
		memcpy(out.data() + kSaveHeaderSize + domain_xml.size() + 1, cookie.data(), cookie.size());
	return out;
}

} // namespace cloudlet::qemu
