// synthesize: overlay + base -> the launch VM, running (docs/synthesis.md).
//
//   header ─ refuse up front (base, CPU model, name, space) ─ create the instance folder
//   segments ─ fetched, checked and decompressed on worker threads ─ applied in order:
//              disk chunks into qcow2 layers, memory records into a page table
//   footer ─ device state
//   restore ─ libvirt reads a save image through a FIFO while we generate it
//   NIC swap ─ unplug the launch VM's NICs, plug fresh ones
//
// Any failure after the folder exists removes the domain and the folder.
#include "ops/synthesis.h"

#include "engine/overlay_apply.h"
#include "host/store_space.h"
#include "image_file.h"
#include "ops/base.h"
#include "ops/base_common.h"
#include "ops/base_verify.h"
#include "save_image.h"
#include "util/error.h"
#include "util/mapped_file.h"
#include "virt/base_xml.h"
#include "virt/domain.h"
#include "virt/host_caps.h"
#include "virt/streamed_restore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include <libvirt/virterror.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>

namespace cloudlet::ops {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string new_uuid() {
	uuid_t u;
	char s[37];
	uuid_generate_random(u);
	uuid_unparse_lower(u, s);
	return s;
}

// Counts the time the pipeline waits for overlay bytes.
class TimedSource : public qemu::Source {
public:
	explicit TimedSource(qemu::Source &s) : s_(s) {}
	size_t read(uint8_t *buf, size_t n) override {
		auto t = Clock::now();
		size_t got = s_.read(buf, n);
		seconds += since(t);
		return got;
	}
	double seconds = 0;

private:
	qemu::Source &s_;
};

// Everything that exists because of this synthesis, removed on failure.
struct Created {
	std::string dir, domain;
	std::shared_ptr<virt::Connection> conn;
	bool keep = false;
	~Created() {
		if (keep)
			return;
		if (!domain.empty() && conn) {
			if (virDomainPtr d = virDomainLookupByName(conn->get(), domain.c_str())) {
				virDomainDestroy(d);
				virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_NVRAM); // a transient domain is gone already
				virDomainFree(d);
			}
			virResetLastError();
		}
		if (!dir.empty())
			store::remove_tree(dir);
	}
};

// The reader's sink: checks the header against this cloudlet before
// anything is created, then sets up the instance and applies the chunks.
class Synthesizer : public format::OverlaySink {
public:
	Synthesizer(Context &ctx, const SynthesisOptions &o, Progress &progress, SynthesisInfo &out,
	            format::BaseBounds &bounds, uint64_t space_needed, Created &created)
	    : ctx_(ctx), o_(o), progress_(progress), out_(out), bounds_(bounds), space_needed_(space_needed),
	      created_(created), st_(ctx.settings().store_dir) {}

	void on_header(const format::OverlayHeader &h) override {
		header = h;
		// 1. The base: the one the overlay names, present and intact.
		store::CatalogEntry e;
		try {
			e = st_.find(h.base_id);
		} catch (const Error &err) {
			if (err.status() != CLOUDLET_E_NOT_FOUND)
				throw;
			fail(CLOUDLET_E_NOT_FOUND, "the overlay needs base " + h.base_id + ", which this cloudlet does not have");
		}
		if (!o_.base.empty()) {
			store::CatalogEntry asked = st_.find(o_.base);
			if (asked.id != e.id)
				fail(CLOUDLET_E_INVALID_ARG, "wrong base: the overlay was made from base " + h.base_id + ", not " +
				                                 asked.id + " (" + asked.name + ")");
		}
		base = verify_base(st_, e, false, progress_);
		if (base.status != "ok")
			fail(CLOUDLET_E_CORRUPT, "base " + e.id + " is corrupt, refusing to synthesize from it: " + base.problem);
		const store::Manifest &m = base.manifest;
		out_.base_id = e.id;

		// 2. This host can run it: the memory state holds the base's CPU model.
		out_.virt_type = o_.virt_type.empty() ? m.virt_type : o_.virt_type;
		conn_ = ctx_.connection();
		virt::VirtTypeCaps caps = virt::query_virt_type(*conn_, out_.virt_type, m.cpu_model);
		if (caps.offered != CLOUDLET_YES)
			fail(CLOUDLET_E_HOST, "this host does not offer virt type '" + out_.virt_type + "': " + caps.offered_detail);
		if (caps.cpu_model_usable != CLOUDLET_YES)
			fail(CLOUDLET_E_HOST, "CPU model " + m.cpu_model + " is not usable under " + out_.virt_type +
			                          " on this host: " + caps.cpu_model_detail);
		virt::check_nic_request(conn_->get(), o_.nic);

		// 3. The overlay's disks are the base's.
		apply_base_.memory = nullptr;
		for (const auto &d : h.disks) {
			const store::Part *part = nullptr;
			for (const auto &p : m.parts)
				if (p.role == "disk" && p.target == d.name)
					part = &p;
			if (!part)
				fail(CLOUDLET_E_CORRUPT, "the overlay has disk " + d.name + ", which base " + e.id + " does not");
			disk_parts.push_back(part);
		}
		for (const auto &p : m.parts)
			if (p.role == "disk") {
				bool named = false;
				for (const auto &d : h.disks)
					named |= d.name == p.target;
				if (!named)
					fail(CLOUDLET_E_CORRUPT, "the overlay lacks base disk " + p.target);
			}

		// 4. A free name, and room for what will be written.
		std::string suffix = new_uuid().substr(0, 8);
		out_.name = o_.name.empty() ? e.name + "-" + suffix : o_.name;
		if (!store::safe_file_name(out_.name))
			fail(CLOUDLET_E_INVALID_ARG, "VM name '" + out_.name + "' must be letters, digits, '.', '-', '_'");
		if (virt::DomainPtr(virDomainLookupByName(conn_->get(), out_.name.c_str())))
			fail(CLOUDLET_E_EXISTS, "a domain named '" + out_.name + "' already exists");
		virResetLastError();
		host::DirSpace space = host::dir_space(st_.instances_dir());
		if (space.free_bytes < space_needed_)
			fail(CLOUDLET_E_IO, "too little disk space in " + space.examined + ": " +
			                        std::to_string(space.free_bytes >> 20) + " MiB free, the overlay may need " +
			                        std::to_string(space_needed_ >> 20) + " MiB");

		// Nothing existed until here.
		out_.uuid = new_uuid();
		out_.dir = st_.instances_dir() + "/" + out_.name;
		if (mkdir(out_.dir.c_str(), 0755) != 0)
			fail_errno(errno == EEXIST ? "an instance folder " + out_.dir + " already exists"
			                           : "cannot create instance folder " + out_.dir,
			           errno);
		created_.dir = out_.dir;
		created_.conn = conn_;
		chmod(out_.dir.c_str(), 0755);
		write_text_file(out_.dir + "/base.id", e.id + "\n"); // base remove checks it

		base_memory = std::make_unique<VerifiedPages>(base.dir + "/memory.cltmem", base.dir + "/memory.idx");
		apply_base_.memory = base_memory.get();
		std::vector<std::string> layers;
		for (size_t i = 0; i < disk_parts.size(); i++) {
			std::string raw = base.dir + "/" + disk_parts[i]->file;
			disk_maps.push_back(std::make_unique<MappedFile>(raw));
			apply_base_.disks.push_back({disk_maps.back()->data(), disk_maps.back()->size(), raw});
			layers.push_back(out_.dir + "/disk-" + h.disks[i].name + ".qcow2");
			bounds_.disk_bytes.push_back(disk_maps.back()->size());
		}
		bounds_.memory_pages = base_memory->stream_info().total_pages;
		bounds_.known = true; // the reader checks every reference from here on
		applier = std::make_unique<engine::OverlayApplier>(apply_base_, h, layers, out_.dir, progress_);
		layer_paths = layers;
	}

	void on_chunk(const format::ChunkRecord &r, const uint8_t *data) override {
		auto t = Clock::now();
		applier->on_chunk(r, data);
		apply_seconds += since(t);
	}
	void on_device_state(const std::vector<uint8_t> &ds) override { applier->on_device_state(ds); }

	format::OverlayHeader header;
	BaseInfo base;
	std::vector<const store::Part *> disk_parts;
	std::vector<std::unique_ptr<MappedFile>> disk_maps;
	std::unique_ptr<VerifiedPages> base_memory;
	std::unique_ptr<engine::OverlayApplier> applier;
	std::vector<std::string> layer_paths;
	std::shared_ptr<virt::Connection> conn_;
	double apply_seconds = 0;

private:
	Context &ctx_;
	const SynthesisOptions &o_;
	Progress &progress_;
	SynthesisInfo &out_;
	format::BaseBounds &bounds_;
	uint64_t space_needed_;
	Created &created_;
	store::BaseStore st_;
	engine::ApplyBase apply_base_;
};

} // namespace

SynthesisInfo synthesize(Context &ctx, const std::string &overlay, const SynthesisOptions &o, Progress &progress) {
	auto t0 = Clock::now();
	SynthesisInfo out;
	out.source = overlay;

	// The source: a URL streams through libcurl; a file is read directly,
	// and its footer gives an upper bound of the space synthesis needs.
	std::unique_ptr<qemu::Source> src;
	int fd = -1;
	struct CloseFd {
		int &fd;
		~CloseFd() {
			if (fd >= 0)
				close(fd);
		}
	} close_fd{fd};
	uint64_t space_needed = 64ull << 20;
	std::string what = overlay;
	if (net::is_url(overlay)) {
		auto http = std::make_unique<net::HttpSource>(overlay, o.http);
		what = http->display_url();
		src = std::move(http);
	} else {
		fd = open(overlay.c_str(), O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fail_errno("cannot open overlay " + overlay, errno);
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		format::OverlayFootprint fp = format::overlay_footprint(fd, overlay);
		// qcow2 metadata: one 8-byte L2 entry per chunk, rounded up generously.
		space_needed += fp.bound_bytes() + fp.bound_bytes() / 256;
		src = std::make_unique<qemu::FdSource>(fd, overlay);
	}
	TimedSource timed(*src);
	qemu::Reader reader(timed, "overlay " + what, 4u << 20);

	Created created;
	format::BaseBounds bounds;
	Synthesizer sink(ctx, o, progress, out, bounds, space_needed, created);
	format::ReadStats stats;
	unsigned threads = o.threads ? o.threads : std::max(1u, ctx.settings().worker_threads);
	auto tr = Clock::now();
	progress.report("fetch", 0, 0);
	out.counts = format::read_overlay(reader, sink, bounds, threads, &stats);
	sink.applier->finish();
	out.read_seconds = since(tr);
	out.fetch_seconds = timed.seconds;
	out.decompress_seconds = stats.decode_seconds();
	out.apply_seconds = sink.apply_seconds;
	out.memory_chunks = sink.header.total_pages;
	for (const auto &d : sink.header.disks)
		out.disk_chunks += (d.bytes + 4095) / 4096;
	for (const auto &l : sink.layer_paths) {
		struct stat st {};
		if (stat(l.c_str(), &st) == 0)
			out.disk_layer_bytes += static_cast<uint64_t>(st.st_size);
	}

	// The domain XML: the base's, with this instance's identity and files,
	// and the launch VM's NICs (docs/synthesis.md says why only those).
	virt::InstancePlan plan;
	plan.name = out.name;
	plan.uuid = out.uuid;
	plan.virt_type = out.virt_type;
	plan.base_dir = sink.base.dir;
	plan.instance_dir = out.dir;
	for (size_t i = 0; i < sink.disk_parts.size(); i++)
		plan.disks.push_back({sink.header.disks[i].name, sink.layer_paths[i], sink.base.dir + "/" + sink.disk_parts[i]->file});
	std::string xml = virt::synthesis_xml(read_text_file(sink.base.dir + "/domain.xml", 16u << 20),
	                                      sink.header.domain_xml, plan);

	auto ts = Clock::now();
	progress.report("restore", 0, 0);
	created.domain = out.name;
	virt::restore_streamed(
	    sink.conn_->get(), out.dir + "/restore.fifo",
	    [&](qemu::ByteSink &s) {
		    std::vector<uint8_t> head = qemu::encode_save_header(xml, "", true);
		    s.write(head.data(), head.size());
		    qemu::write_stream(s, *sink.applier);
	    },
	    progress);
	out.restore_seconds = since(ts);
	virt::DomainPtr dom(virDomainLookupByName(sink.conn_->get(), out.name.c_str()));
	if (!dom)
		virt::fail_libvirt("the synthesized VM " + out.name + " vanished after restore");

	auto tn = Clock::now();
	virt::NicSwap swap = virt::swap_nics(dom.get(), o.nic, progress);
	out.macs = swap.macs;
	out.old_macs = swap.old_macs;
	out.nic_seconds = since(tn);
	created.keep = true;
	out.total_seconds = since(t0);
	return out;
}

} // namespace cloudlet::ops
