// overlay create: the launch VM's memory is deduplicated page by page while
// QEMU migrates it into our socket (no copy of the memory is staged), then
// the allocated clusters of each disk's copy-on-write layer, all while the
// VM is paused so disks and memory are one instant (docs/overlays.md).
#include "ops/overlay.h"

#include "engine/dedup.h"
#include "format/overlay_file.h"
#include "host/process.h"
#include "image_file.h"
#include "ops/base_common.h"
#include "ops/base_verify.h"
#include "ops/snapshot_capture.h"
#include "stream_writer.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "util/xml.h"
#include "virt/domain.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <libxml/tree.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

namespace cloudlet::ops {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct LaunchDisk {
	std::string target, file; // the instance's qcow2
	uint64_t bytes = 0;
	const store::Part *base_part = nullptr;
};

struct JsonFree {
	void operator()(json_object *o) const { json_object_put(o); }
};

uint64_t jnum(json_object *o, const char *k) {
	json_object *v = nullptr;
	return json_object_object_get_ex(o, k, &v) ? static_cast<uint64_t>(json_object_get_int64(v)) : 0;
}
bool jbool(json_object *o, const char *k) {
	json_object *v = nullptr;
	return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

// Feeds every page of the migration stream to the deduper and the writer.
class DedupSink : public qemu::StreamSink {
public:
	DedupSink(engine::Deduper &dd, engine::DedupBase &base, const qemu::StreamInfo &base_stream,
	          format::OverlayHeader &header, std::function<std::unique_ptr<format::OverlayWriter>()> make_writer)
	    : dd_(dd), base_(base), base_stream_(base_stream), header_(header), make_writer_(std::move(make_writer)),
	      page_(engine::kChunkSize) {}
	void on_ram_blocks(const qemu::StreamInfo &info) override {
		header_.total_pages = info.total_pages;
		header_.ram_blocks.clear();
		for (const auto &b : info.blocks)
			header_.ram_blocks.push_back({b.name, b.pages() * engine::kChunkSize});
		header_.stream_version = info.version;
		header_.ram_section_id = info.ram_section_id;
		header_.ram_instance_id = info.ram_instance_id;
		header_.ram_version = info.ram_version;
		header_.config_section = info.config_section;
		// Same-position comparison only makes sense if pages line up.
		bool same = info.blocks.size() == base_stream_.blocks.size();
		for (size_t i = 0; same && i < info.blocks.size(); i++)
			same = info.blocks[i].name == base_stream_.blocks[i].name &&
			       info.blocks[i].length == base_stream_.blocks[i].length;
		base_.same_memory_layout = same;
		writer = make_writer_();
	}
	void on_page(uint32_t, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t) override {
		if (!data) {
			memset(page_.data(), fill, page_.size());
			data = page_.data();
		}
		engine::DedupDecision d = dd_.classify(format::kMemorySpace, linear, data);
		if (d.unchanged)
			return;
		if (format::stores_payload(d.kind))
			writer->add_data(format::kMemorySpace, linear, d.payload, d.kind);
		else
			writer->add_ref(format::kMemorySpace, linear, d.kind, d.ref);
	}
	std::unique_ptr<format::OverlayWriter> writer;

private:
	engine::Deduper &dd_;
	engine::DedupBase &base_;
	const qemu::StreamInfo &base_stream_;
	format::OverlayHeader &header_;
	std::function<std::unique_ptr<format::OverlayWriter>()> make_writer_;
	std::vector<uint8_t> page_;
};

// The clusters of a qcow2 that its own layer holds (depth 0): data with the
// host offset to read them at, or explicit zeros.
struct Extent {
	uint64_t start, length;
	bool data;
	uint64_t host_offset;
};

std::vector<Extent> own_extents(const std::string &qcow2) {
	std::string out = host::run_program({"qemu-img", "map", "--output=json", "-U", qcow2});
	std::unique_ptr<json_object, JsonFree> doc(json_tokener_parse(out.c_str()));
	if (!doc || !json_object_is_type(doc.get(), json_type_array))
		fail(CLOUDLET_E_IO, "qemu-img map of " + qcow2 + " did not give a JSON list");
	std::vector<Extent> v;
	for (size_t i = 0; i < json_object_array_length(doc.get()); i++) {
		json_object *e = json_object_array_get_idx(doc.get(), i);
		if (jnum(e, "depth") != 0 || !jbool(e, "present"))
			continue;
		Extent x{jnum(e, "start"), jnum(e, "length"), jbool(e, "data"), jnum(e, "offset")};
		json_object *off = nullptr;
		if (x.data && !json_object_object_get_ex(e, "offset", &off))
			fail(CLOUDLET_E_UNSUPPORTED, qcow2 + ": clusters at " + std::to_string(x.start) +
			                                 " are compressed or encrypted; overlays read plain clusters only");
		if (x.start % engine::kChunkSize)
			fail(CLOUDLET_E_UNSUPPORTED, qcow2 + ": an extent at " + std::to_string(x.start) + " is not 4 KiB aligned");
		v.push_back(x);
	}
	return v;
}

uint64_t virtual_size(const std::string &image) {
	std::string out = host::run_program({"qemu-img", "info", "--output=json", "-U", image});
	std::unique_ptr<json_object, JsonFree> doc(json_tokener_parse(out.c_str()));
	uint64_t s = doc ? jnum(doc.get(), "virtual-size") : 0;
	if (!s)
		fail(CLOUDLET_E_IO, "qemu-img info of " + image + " gave no virtual size");
	return s;
}

} // namespace

OverlayInfo overlay_create(Context &ctx, const std::string &domain, const std::string &path,
                           const OverlayCreateOptions &o, Progress &progress) {
	auto t0 = Clock::now();
	bool auto_codec = o.codec == "auto";
	engine::Codec codec = auto_codec ? engine::Codec::Zstd : engine::codec_from_name(o.codec);
	store::BaseStore st(ctx.settings().store_dir);
	auto conn = ctx.connection();
	virt::DomainPtr dom = virt::lookup_domain(*conn, domain);
	OverlayInfo info;
	info.path = path;
	info.domain = virDomainGetName(dom.get());
	info.codec = auto_codec ? "auto" : engine::codec_name(codec);
	int state = virt::domain_state(dom.get());
	if (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_PAUSED)
		fail(CLOUDLET_E_INVALID_ARG, "domain " + info.domain + " is " + virt::state_name(state) +
		                                 "; an overlay is made from a running or paused domain");
	bool was_running = state == VIR_DOMAIN_RUNNING;

	// Which base, which disks: the instance's files say (base resume put a
	// base.id beside its disks).
	std::string xml = virt::save_xml(dom.get());
	auto doc = xml::parse(xml, "domain XML of " + info.domain);
	std::vector<LaunchDisk> disks;
	for (xmlNode *d : xml::select(doc.get(), "/domain/devices/disk[@device='disk' or not(@device)]")) {
		auto file = xml::value(doc.get(), "source/@file", d), target = xml::value(doc.get(), "target/@dev", d);
		if (!file || !target)
			fail(CLOUDLET_E_INVALID_ARG, "domain " + info.domain + " has a disk that is not a file");
		disks.push_back({*target, *file, 0, nullptr});
	}
	if (disks.empty())
		fail(CLOUDLET_E_INVALID_ARG, "domain " + info.domain + " has no disk; it was not resumed from a base");
	std::string inst_dir = disks[0].file.substr(0, disks[0].file.find_last_of('/'));
	std::string base_id;
	try {
		base_id = read_text_file(inst_dir + "/base.id", 256);
	} catch (const Error &) {
		fail(CLOUDLET_E_INVALID_ARG, "domain " + info.domain + " was not resumed from a base of this store (no " +
		                                 inst_dir + "/base.id)");
	}
	while (!base_id.empty() && (base_id.back() == '\n' || base_id.back() == ' '))
		base_id.pop_back();
	BaseInfo base = verify_base(st, st.find(base_id), false, progress);
	if (base.status != "ok")
		fail(CLOUDLET_E_CORRUPT, "base " + base_id + " is corrupt: " + base.problem);
	info.base_id = base.entry.id;
	for (auto &d : disks) {
		for (const auto &p : base.manifest.parts)
			if (p.role == "disk" && p.target == d.target)
				d.base_part = &p;
		if (!d.base_part)
			fail(CLOUDLET_E_INVALID_ARG, "disk " + d.target + " of " + info.domain + " is not in base " + base_id);
		d.bytes = virtual_size(d.file);
	}

	// The base as dedup sees it.
	qemu::ImageFile base_mem(base.dir + "/memory.cltmem");
	engine::IndexFile base_mem_idx(base.dir + "/memory.idx");
	std::vector<std::unique_ptr<MappedFile>> base_disk_maps;
	std::vector<std::unique_ptr<engine::IndexFile>> base_idx;
	engine::DedupBase db;
	db.memory = &base_mem;
	db.memory_index = &base_mem_idx;
	for (const auto &d : disks) {
		base_disk_maps.push_back(std::make_unique<MappedFile>(base.dir + "/" + d.base_part->file));
		base_idx.push_back(std::make_unique<engine::IndexFile>(base.dir + "/disk-" + d.target + ".idx"));
		std::string s512 = base.dir + "/disk-" + d.target + ".idx512";
		base_idx.push_back(access(s512.c_str(), R_OK) == 0 ? std::make_unique<engine::IndexFile>(s512) : nullptr);
		db.disks.push_back({base_disk_maps.back()->data(), base_disk_maps.back()->size(),
		                    base_idx[base_idx.size() - 2].get(), base_idx.back().get()});
	}
	engine::Deduper dd(db, st.root() + "/tmp");

	format::OverlayHeader header;
	header.base_id = info.base_id;
	for (const auto &d : disks)
		header.disks.push_back({d.target, d.bytes});
	header.domain_xml = xml;
	header.codec = info.codec;
	// The level actually used (the codec's default when none was asked for).
	header.level = o.level >= 0 ? o.level : codec == engine::Codec::Zstd ? 3 : codec == engine::Codec::Lzma ? 6 : 0;
	header.block_bytes = static_cast<uint32_t>(o.segment_bytes);
	header.created = now_iso8601();
	header.creator = "libcloudlet";

	std::string part = path + ".part";
	int fd = open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_errno("cannot create " + part, errno);
	struct Out {
		int fd;
		std::string part;
		bool keep = false;
		~Out() {
			close(fd);
			if (!keep)
				unlink(part.c_str());
		}
	} out{fd, part};
	qemu::FdSink sink(fd, part);
	DedupSink pages(dd, db, base_mem.stream_info(), header, [&] {
		unsigned threads = o.threads ? o.threads : std::max(1u, ctx.settings().worker_threads);
		auto w = std::make_unique<format::OverlayWriter>(sink, header, codec, header.level, o.segment_bytes, threads);
		if (auto_codec)
			w->choose_codec_from_first_segment();
		return w;
	});

	CaptureResult cap;
	try {
		// 1. Memory: paused for the whole capture (one version of each page),
		// and left paused for the disks.
		auto tc = Clock::now();
		CaptureOptions co;
		co.format = CaptureFormat::Sink;
		co.sink = &pages;
		co.keep_paused = true;
		cap = snapshot_capture(ctx, info.domain, "", co, progress);
		info.capture_seconds = since(tc);
		if (!pages.writer)
			fail(CLOUDLET_E_CORRUPT, "the migration stream of " + info.domain + " had no RAM");

		// 2. Disks: only what the copy-on-write layer holds can differ.
		auto td = Clock::now();
		std::vector<uint8_t> chunk(engine::kChunkSize), zero(engine::kChunkSize, 0);
		for (size_t di = 0; di < disks.size(); di++) {
			progress.report("disks", di, disks.size());
			uint8_t space = static_cast<uint8_t>(1 + di);
			int qfd = open(disks[di].file.c_str(), O_RDONLY | O_CLOEXEC);
			if (qfd < 0)
				fail_errno("cannot open " + disks[di].file, errno);
			struct Close {
				int fd;
				~Close() { close(fd); }
			} qclose{qfd};
			for (const Extent &x : own_extents(disks[di].file)) {
				for (uint64_t off = 0; off < x.length; off += engine::kChunkSize) {
					uint64_t at = x.start + off;
					if (at >= disks[di].bytes)
						break;
					const uint8_t *data = zero.data();
					if (x.data) {
						size_t want = static_cast<size_t>(std::min<uint64_t>(engine::kChunkSize, disks[di].bytes - at));
						std::fill(chunk.begin(), chunk.end(), 0);
						ssize_t n = pread(qfd, chunk.data(), want, static_cast<off_t>(x.host_offset + off));
						if (n != static_cast<ssize_t>(want))
							fail_errno("cannot read " + disks[di].file, n < 0 ? errno : EIO);
						data = chunk.data();
					}
					engine::DedupDecision d = dd.classify(space, at / engine::kChunkSize, data);
					if (d.unchanged)
						continue;
					if (format::stores_payload(d.kind))
						pages.writer->add_data(space, at / engine::kChunkSize, d.payload, d.kind);
					else
						pages.writer->add_ref(space, at / engine::kChunkSize, d.kind, d.ref);
				}
			}
		}
		info.disk_seconds = since(td);
	} catch (...) {
		virt::restore_run_state(dom.get(), was_running, ctx.log());
		throw;
	}
	// The launch state is read: give the domain back before writing out.
	virt::release(dom.get(), was_running, o.stop, "the overlay is captured");
	info.file_bytes = pages.writer->finish(cap.stream.device_state);
	if (auto_codec)
		info.codec = std::string("auto: ") + engine::codec_name(pages.writer->codec());
	sink.flush();
	if (fsync(fd) != 0)
		fail_errno("cannot sync " + part, errno);
	if (rename(part.c_str(), path.c_str()) != 0)
		fail_errno("cannot rename " + part + " to " + path, errno);
	out.keep = true;
	info.counts = dd.counts();
	info.memory_chunks = header.total_pages;
	for (const auto &d : disks)
		info.disk_chunks += (d.bytes + engine::kChunkSize - 1) / engine::kChunkSize;
	// Chunks never looked at (the base's clusters) are unchanged too.
	info.counts.n[1][0] += info.disk_chunks - info.counts.total(1);
	info.segments = pages.writer->segments();
	info.payload_bytes = pages.writer->payload_bytes();
	info.stored_bytes = pages.writer->stored_bytes();
	info.device_state_bytes = cap.stream.device_state.size();
	info.total_seconds = since(t0);
	return info;
}

} // namespace cloudlet::ops
