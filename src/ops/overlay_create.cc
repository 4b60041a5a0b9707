// overlay create: the allocated clusters of each disk's copy-on-write layer,
// then the launch VM's memory, deduplicated page by page while QEMU
// migrates it into our socket (no copy of the memory is staged), all while
// the VM is paused so disks and memory are one instant (docs/overlays.md).
#include "ops/overlay.h"
#include "store/undo_journal.h"
#include "ops/recovery.h"

#include "chunk/chunk_ref.h"
#include "engine/dedup.h"
#include "format/overlay_file.h"
#include "image_file.h"
#include "ops/base_common.h"
#include "ops/launch_source.h"
#include "stream_writer.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/unique_fd.h"
#include "virt/domain.h"
#include "virt/migration_capture.h"
#include "virt/virtio_rings.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

namespace cloudlet::ops {

namespace {

// Feeds every page of the migration stream to the deduper and the writer.
class DedupSink : public qemu::StreamSink {
public:
	DedupSink(engine::Deduper &dd, engine::DedupBase &base, const qemu::StreamInfo &base_stream,
	          format::OverlayHeader &header, format::OverlayWriter &writer)
	    : dd_(dd), base_(base), base_stream_(base_stream), header_(header), writer_(writer), page_(chunk::kChunkSize) {}
	std::vector<virt::GuestRange> rings; // guest-physical: the virtio rings
	void on_ram_blocks(const qemu::StreamInfo &info) override {
		format::set_ram_layout(header_, info);
		// The rings' pages go first in the overlay (docs/early-start.md):
		// pc.ram holds guest-physical memory from 0.
		std::vector<uint64_t> first;
		for (const auto &b : info.blocks)
			if (b.name == "pc.ram")
				for (const auto &r : rings)
					for (uint64_t p = r.gpa / chunk::kChunkSize;
					     r.bytes && p <= (r.gpa + r.bytes - 1) / chunk::kChunkSize && p < b.pages(); p++)
						first.push_back(b.first_page + p);
		writer_.store_first(first);
		// Same-position comparison only makes sense if pages line up.
		base_.same_memory_layout = qemu::same_ram_layout(info.blocks, base_stream_.blocks);
		had_ram = true;
	}
	void on_page(uint32_t, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t) override {
		if (!data) {
			memset(page_.data(), fill, page_.size());
			data = page_.data();
		}
		add(dd_, writer_, chunk::kMemorySpace, linear, data);
	}
	static void add(engine::Deduper &dd, format::OverlayWriter &w, uint8_t space, uint64_t chunk,
	                const uint8_t *data) {
		engine::DedupDecision d = dd.classify(space, chunk, data);
		if (d.unchanged)
			return;
		// A page the VM needs before it can run (a virtio ring) is stored
		// whole rather than as a reference to memory stored later in the
		// file (identical rings of idle queues are each other's copies).
		bool to_memory = (d.kind == chunk::ChunkKind::Self || d.kind == chunk::ChunkKind::ShiftXor) &&
		                 chunk::unpack_ref(d.ref).selector == chunk::kMemorySpace;
		if (space == chunk::kMemorySpace && to_memory && w.is_first(chunk))
			w.add_data(space, chunk, data);
		else if (chunk::stores_payload(d.kind))
			w.add_data(d.record(space, chunk), d.payload);
		else
			w.add_ref(space, chunk, d.kind, d.ref);
	}
	bool had_ram = false;

private:
	engine::Deduper &dd_;
	engine::DedupBase &base_;
	const qemu::StreamInfo &base_stream_;
	format::OverlayHeader &header_;
	format::OverlayWriter &writer_;
	std::vector<uint8_t> page_;
};

} // namespace

OverlayInfo overlay_create(Context &ctx, const std::string &domain, const std::string &path,
                           const OverlayCreateOptions &o, Progress &progress) {
	auto t0 = Clock::now();
	bool auto_codec = o.codec == "auto";
	chunk::Codec codec = auto_codec ? chunk::Codec::Zstd : chunk::codec_from_name(o.codec);
	recover_store(ctx); // what killed operations left (docs/reliability.md)
	store::BaseStore st(ctx.settings().store_dir);
	auto conn = ctx.connection();
	virt::DomainPtr dom = virt::lookup_domain(*conn, domain);
	OverlayInfo info;
	info.path = path;
	info.domain = virt::domain_name(dom.get());
	info.codec = auto_codec ? "auto" : chunk::codec_name(codec);
	virt::RunState state = virt::run_state(dom.get());
	if (!state.running() && !state.paused())
		fail(CLOUDLET_E_INVALID_ARG, "domain " + info.domain + " is " + state.name() +
		                                 "; an overlay is made from a running or paused domain");
	bool was_running = state.running();

	// Which base, which disks: the instance's files say (base resume put a
	// base.id beside its disks).
	LaunchSource src;
	describe_launch(ctx, dom.get(), progress, src);
	info.base_id = src.base.entry.id;
	const std::string &xml = src.xml;
	const auto &disks = src.disks;
	engine::DedupBase &db = src.dedup;
	qemu::ImageFile &base_mem = *src.base_memory;
	engine::Deduper dd(db, st.root() + "/tmp");

	format::OverlayHeader header;
	header.base_id = info.base_id;
	for (const auto &d : disks)
		header.disks.push_back({d.target, d.bytes});
	header.domain_xml = xml;
	header.codec = info.codec;
	// The level actually used (the codec's default when none was asked for).
	header.level = o.level >= 0 ? o.level : chunk::default_level(codec);
	header.block_bytes = static_cast<uint32_t>(o.segment_bytes);
	header.created = now_iso8601();
	header.creator = "libcloudlet";

	std::string part = path + ".part";
	store::UndoJournal journal(st.root(), "overlay-create"); // if we die: no part file, the VM runs
	journal.remove_path(part);
	UniqueFd fd(open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	if (!fd)
		fail_errno("cannot create " + part, errno);
	struct Out { // the part file goes unless it became the overlay
		std::string part;
		bool keep = false;
		~Out() {
			if (!keep)
				unlink(part.c_str());
		}
	} out{part};
	qemu::FdSink sink(fd.get(), part);
	unsigned threads = o.threads ? o.threads : std::max(1u, ctx.settings().worker_threads);
	// Format version 2: disk segments, then the start block, then memory
	// (docs/formats/overlay.md); the writer keeps them apart until finish().
	format::OverlayWriter writer(sink, header, codec, header.level, o.segment_bytes, threads, format::kOverlayVersion,
	                             st.root() + "/tmp");
	if (auto_codec)
		writer.choose_codec_from_first_segment();
	DedupSink pages(dd, db, base_mem.stream_info(), header, writer);

	virt::MigrationCapture cap;
	try {
		// 1. Disks first, with the VM paused for disks and memory alike (one
		// instant): only what the copy-on-write layer holds can differ. The
		// memory's pages may then refer to disk chunks (a file's pages in
		// the page cache), which the file holds before them.
		auto td = Clock::now();
		if (was_running) {
			journal.resume_domain(virt::domain_uuid(dom.get()));
			virt::pause(dom.get(), "cannot pause domain " + info.domain + " for the overlay");
		}
		for (size_t di = 0; di < disks.size(); di++) {
			progress.report("disks", di, disks.size());
			uint8_t space = static_cast<uint8_t>(1 + di);
			for_each_own_chunk(disks[di], [&](uint64_t chunk, const uint8_t *data) {
				progress.check();
				DedupSink::add(dd, writer, space, chunk, data);
			});
		}
		info.disk_seconds = since(td);
		try {
			pages.rings = virt::virtio_ring_ranges(dom.get());
		} catch (const Error &e) {
			ctx.log().warn("the overlay's pages are stored without the virtio rings first: " + std::string(e.what()));
		}

		// 2. Memory, still paused (one version of each page).
		auto tc = Clock::now();
		cap = virt::capture_migration(dom.get(), false, pages, {}, progress, ctx.log());
		info.capture_seconds = since(tc);
		if (!pages.had_ram)
			fail(CLOUDLET_E_CORRUPT, "the migration stream of " + info.domain + " had no RAM");
	} catch (...) {
		virt::restore_run_state(dom.get(), was_running, ctx.log());
		throw;
	}
	// The launch state is read: give the domain back before writing out.
	virt::release(dom.get(), was_running, o.stop, "the overlay is captured");
	info.file_bytes = writer.finish(cap.stream.device_state, header);
	if (auto_codec)
		info.codec = std::string("auto: ") + chunk::codec_name(writer.codec());
	sink.flush();
	if (fsync(fd.get()) != 0)
		fail_errno("cannot sync " + part, errno);
	if (rename(part.c_str(), path.c_str()) != 0)
		fail_errno("cannot rename " + part + " to " + path, errno);
	out.keep = true;
	info.counts = dd.counts();
	info.memory_chunks = header.total_pages;
	for (const auto &d : disks)
		info.disk_chunks += (d.bytes + chunk::kChunkSize - 1) / chunk::kChunkSize;
	// Chunks never looked at (the base's clusters) are unchanged too.
	info.counts.n[1][0] += info.disk_chunks - info.counts.total(1);
	info.segments = writer.segments();
	info.payload_bytes = writer.payload_bytes();
	info.stored_bytes = writer.stored_bytes();
	info.device_state_bytes = cap.stream.device_state.size();
	info.total_seconds = since(t0);
	return info;
}

} // namespace cloudlet::ops
