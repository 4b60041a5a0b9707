#include "ops/snapshot_info.h"

#include "byte_reader.h"
#include "save_image.h"
#include "stream_parser.h"
#include "stream_summary.h"
#include "util/error.h"
#include "util/unique_fd.h"
#include "util/xml.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace cloudlet::ops {

namespace {

// Counts bytes as they are read and reports them as progress.
class ProgressSource : public qemu::Source {
public:
	ProgressSource(qemu::Source &inner, Progress &p, uint64_t total) : inner_(inner), p_(p), total_(total) {}
	size_t read(uint8_t *buf, size_t n) override {
		size_t r = inner_.read(buf, n);
		done_ += r;
		if (done_ - reported_ >= (64u << 20) || r == 0) {
			reported_ = done_;
			p_.report("read", done_, total_);
		}
		return r;
	}

private:
	qemu::Source &inner_;
	Progress &p_;
	uint64_t total_, done_ = 0, reported_ = 0;
};

} // namespace

SnapshotInfo snapshot_info(const std::string &path, Progress &progress) {
	SnapshotInfo info;
	info.path = path;
	UniqueFd fd = open_for_reading(path);
	struct stat st {};
	if (fstat(fd.get(), &st) == 0)
		info.file_bytes = static_cast<uint64_t>(st.st_size);
	progress.report("read", 0, info.file_bytes);

	qemu::FdSource fds(fd.get(), path);
	ProgressSource src(fds, progress, info.file_bytes);
	qemu::Reader r(src, path);
	if (r.peek() == 'L') {
		qemu::SaveImageHeader h = qemu::read_save_header(r);
		info.format = "libvirt-save";
		info.image_version = h.version;
		info.complete = h.complete;
		info.was_running = h.was_running == 1;
		auto doc = xml::parse(h.domain_xml, path + ": domain XML");
		info.domain_name = xml::value(doc.get(), "/domain/name").value_or("");
		info.domain_uuid = xml::value(doc.get(), "/domain/uuid").value_or("");
	} else {
		info.format = "qemu-stream";
	}
	qemu::StreamSummary sum;
	qemu::StreamInfo si = qemu::parse_stream(r, sum);
	info.stream_version = si.version;
	info.machine_type = si.machine_type;
	info.ram_sections = si.ram_sections;
	info.page_records = sum.page_records;
	info.total_pages = si.total_pages;
	auto counts = sum.counts(si);
	for (size_t b = 0; b < si.blocks.size(); b++) {
		SnapshotBlock blk{si.blocks[b].name, si.blocks[b].length, si.blocks[b].pages(), counts[b].zero,
		                  counts[b].data};
		info.zero_pages += blk.zero_pages;
		info.data_pages += blk.data_pages;
		info.blocks.push_back(blk);
	}
	info.device_state_bytes = si.device_state.size();
	qemu::DeviceStateLayout layout = qemu::split_device_state(si.device_state);
	info.devices_split = layout.split;
	info.devices_problem = layout.problem;
	for (const auto &d : layout.sections)
		info.devices.push_back(d.name + "/" + std::to_string(d.instance_id));
	return info;
}

} // namespace cloudlet::ops
