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

#include "ops/launch_target.h"
#include "util/cancel_relay.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/unique_fd.h"
#include "virt/domain.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>

namespace cloudlet::ops {

namespace {

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

// The reader's sink: prepares the launch target from the header (refusing
// up front), then applies the chunks.
class Synthesizer : public format::OverlaySink {
public:
	Synthesizer(Context &ctx, const LaunchRequest &req, Progress &progress, LaunchTarget &t, LaunchCleanup &cleanup,
	            format::BaseBounds &bounds)
	    : ctx_(ctx), req_(req), progress_(progress), t_(t), cleanup_(cleanup), bounds_(bounds) {}

	void on_header(const format::OverlayHeader &h) override {
		header = h;
		prepare_launch(ctx_, h, req_, progress_, t_, cleanup_);
		bounds_ = t_.bounds; // the reader checks every reference from here on
	}
	void on_chunk(const chunk::ChunkRecord &r, const uint8_t *data) override {
		auto t = Clock::now();
		t_.applier->on_chunk(r, data);
		if (early && r.space == chunk::kMemorySpace)
			early->arrived(r.chunk);
		apply_seconds += since(t);
	}
	void on_device_state(const std::vector<uint8_t> &ds) override { t_.applier->on_device_state(ds); }
	// Format version 2: disks applied, device state known. With early start
	// the VM runs from here, while the memory still arrives.
	void on_start(const std::vector<uint8_t> &named) override {
		if (!req_.postcopy)
			return;
		early_at = Clock::now();
		early = std::make_unique<EarlyStart>(t_, header, cleanup_, named, running, stop_reader, progress_);
	}

	bool prompt() const override { return early != nullptr; }

	format::OverlayHeader header;
	double apply_seconds = 0;
	std::function<void(virt::DomainRef)> running; // early start: the VM runs
	std::function<void()> stop_reader;            // early start: serving failed
	std::unique_ptr<EarlyStart> early;
	Clock::time_point early_at;

private:
	Context &ctx_;
	const LaunchRequest &req_;
	Progress &progress_;
	LaunchTarget &t_;
	LaunchCleanup &cleanup_;
	format::BaseBounds &bounds_;
};

} // namespace

SynthesisInfo synthesize(Context &ctx, const std::string &overlay, const SynthesisOptions &o, Progress &progress) {
	auto t0 = Clock::now();
	SynthesisInfo out;
	out.source = overlay;

	// The source: a URL streams through libcurl; a file is read directly,
	// and its footer gives an upper bound of the space synthesis needs.
	std::unique_ptr<qemu::Source> src;
	UniqueFd fd; // a file overlay: what `src` reads
	uint64_t space_needed = 64ull << 20;
	std::string what = overlay;
	std::unique_ptr<CancelRelay> relay; // a cancel wakes a read blocked on the network
	std::function<void()> stop_reader;
	if (net::is_url(overlay)) {
		auto http = std::make_unique<net::HttpSource>(overlay, o.http);
		what = http->display_url();
		relay = std::make_unique<CancelRelay>(progress, [h = http.get()] { h->cancel(); });
		stop_reader = [h = http.get()] { h->cancel(); };
		src = std::move(http);
	} else {
		fd.reset(open(overlay.c_str(), O_RDONLY | O_CLOEXEC));
		if (!fd)
			fail_errno("cannot open overlay " + overlay, errno);
		posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
		format::OverlayFootprint fp = format::overlay_footprint(fd.get(), overlay);
		// qcow2 metadata: one 8-byte L2 entry per chunk, rounded up generously.
		space_needed += fp.bound_bytes() + fp.bound_bytes() / 256;
		src = std::make_unique<qemu::FdSource>(fd.get(), overlay);
	}
	TimedSource timed(*src);
	qemu::Reader reader(timed, "overlay " + what, 4u << 20);

	LaunchCleanup cleanup;
	LaunchTarget target;
	format::BaseBounds bounds;
	LaunchRequest req;
	req.base = o.base;
	req.name = o.name;
	req.virt_type = o.virt_type;
	req.uuid = o.uuid;
	req.nic = o.nic;
	req.space_needed = space_needed;
	req.postcopy = o.early_start;
	Synthesizer sink(ctx, req, progress, target, cleanup, bounds);
	virt::NicSwap swap;
	// Early start: the NIC swap runs as soon as the VM does, beside its
	// memory's arrival (on the thread that serves the memory).
	auto running = [&](virt::DomainRef dom) {
		out.running_seconds = since(t0);
		auto tn = Clock::now();
		swap = virt::swap_nics(dom, o.nic, progress);
		out.nic_seconds = since(tn);
	};
	sink.running = running;
	sink.stop_reader = stop_reader;
	format::ReadStats stats;
	unsigned threads = o.threads ? o.threads : std::max(1u, ctx.settings().worker_threads);
	auto tr = Clock::now();
	progress.report("fetch", 0, 0);
	try {
		out.counts = format::read_overlay(reader, sink, bounds, threads, &stats);
	} catch (const Error &e) {
		if (!sink.early)
			throw;
		// The VM runs on memory that can never be complete now: it is ended
		// (the cleanup then removes the domain and the folder). A failure of
		// the serving side is the cause when it came first.
		bool serving_failed = sink.early->failed();
		sink.early->abandon();
		if (serving_failed)
			sink.early->throw_failure(); // (finish() would report the missing pages first)
		if (e.status() == CLOUDLET_E_CANCELLED)
			throw;
		fail(e.status(), std::string("the early-started VM was ended, since its overlay stopped arriving: ") + e.what());
	}
	out.read_seconds = since(tr);
	out.fetch_seconds = timed.seconds;
	out.decompress_seconds = stats.decode_seconds();
	out.apply_seconds = sink.apply_seconds;
	out.memory_chunks = sink.header.total_pages;
	for (const auto &d : sink.header.disks)
		out.disk_chunks += (d.bytes + chunk::kChunkSize - 1) / chunk::kChunkSize;
	out.name = target.name;
	out.uuid = target.uuid;
	out.dir = target.dir;
	out.virt_type = target.virt_type;
	out.base_id = target.base_id;

	auto ts = Clock::now();
	if (o.early_start) {
		// A version 2 overlay started the VM at its start block; a version 1
		// overlay starts it now that all of it is here.
		engine::PostcopyStats pc;
		if (sink.early) {
			ts = sink.early_at;
			pc = sink.early->finish();
		} else {
			pc = restore_launch_postcopy(target, sink.header, cleanup, running, progress);
		}
		out.early_start = true;
		out.held_pages = pc.held_pages;
		out.demand_requests = pc.requests;
		out.demand_pages = pc.demand_pages;
		out.background_pages = pc.background_pages;
	} else {
		restore_launch(target, sink.header, false, cleanup, progress);
	}
	out.restore_seconds = since(ts);
	for (const auto &l : target.layer_paths) {
		struct stat st {};
		if (stat(l.c_str(), &st) == 0)
			out.disk_layer_bytes += static_cast<uint64_t>(st.st_size);
	}
	virt::DomainPtr dom =
	    virt::require_domain(*target.conn, out.name, "the synthesized VM " + out.name + " vanished after restore");

	if (!o.early_start) {
		auto tn = Clock::now();
		swap = virt::swap_nics(dom.get(), o.nic, progress);
		out.nic_seconds = since(tn);
	}
	out.macs = swap.macs;
	out.old_macs = swap.old_macs;
	cleanup.keep();
	out.total_seconds = since(t0);
	return out;
}

} // namespace cloudlet::ops
