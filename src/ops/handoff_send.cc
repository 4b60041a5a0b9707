// handoff send: the source side (docs/handoff.md).
//
//   connect + token handshake ─ OFFER (launch header) ─ ACCEPT
//   QEMU live-migrates into our socket ─ each page version into the dirty queue
//   sender thread: disks' own chunks, then the queue ─ dedup ─ ITEMS batches
//   ack thread: counts ACKs (link throughput)
//   QEMU pauses the VM for its last pass ─ disks re-read: changed chunks queued
//   queue drained ─ FINAL (device state) ─ READY ─ GO ─ RUNNING ─ source destroyed
//
// The threads and the queue's sink are engine/handoff_outbound.h; the
// messages net/handoff_messages.h.
//
// Until READY any failure resumes the source VM unchanged; after GO the
// rules of docs/protocols/handoff.md "Failure" apply.
#include "ops/handoff.h"

#include "engine/codec_chooser.h"
#include "engine/dedup.h"
#include "engine/dirty_queue.h"
#include "engine/handoff_outbound.h"
#include "net/handoff_messages.h"
#include "net/handoff_wire.h"
#include "net/tcp.h"
#include "ops/base_common.h"
#include "ops/launch_source.h"
#include "ops/recovery.h"
#include "store/undo_journal.h"
#include "util/cancel_relay.h"
#include "util/clock.h"
#include "util/error.h"
#include "virt/domain.h"
#include "virt/migration_capture.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>
#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>

namespace cloudlet::ops {

namespace {

// The launch header the OFFER carries; the capture's sink adds QEMU's RAM
// layout when it arrives.
format::OverlayHeader offer_header(const LaunchSource &src, const HandoffOptions &o) {
	format::OverlayHeader h;
	h.base_id = src.base.entry.id;
	for (const auto &d : src.disks)
		h.disks.push_back({d.target, d.bytes});
	h.domain_xml = src.xml;
	h.codec = o.codec;
	h.level = o.level;
	h.created = now_iso8601();
	h.creator = "libcloudlet handoff";
	return h;
}

engine::OutboundSource outbound_source(LaunchSource &src) {
	engine::OutboundSource s;
	s.disks = src.disks.size();
	s.for_each_own_chunk = [&src](size_t d, const std::function<void(uint64_t, const uint8_t *)> &f) {
		for_each_own_chunk(src.disks[d], f);
	};
	s.base_memory = &src.base_memory->stream_info();
	s.dedup = &src.dedup;
	return s;
}

// The connections a handoff makes: the first, then one per resume (all
// kept to the end: the engine holds their channels). The one being made can
// be interrupted from another thread (stop(), the pause).
class Connections {
public:
	Connections(std::string destination, const net::LinkSetup &setup, int handshake_ms, int timeout_ms)
	    : destination_(std::move(destination)), host_(net::parse_destination(destination_).host), setup_(setup),
	      handshake_ms_(handshake_ms), timeout_ms_(timeout_ms) {}

	// TCP, the link (TLS or plaintext), the frame handshake.
	net::FrameChannel &open(int connect_ms) {
		auto c = dial(connect_ms, timeout_ms_);
		description_ = c->link->description();
		return keep(std::move(c));
	}
	// A new connection that resumes `session` (docs/protocols/handoff.md
	// "Resume"): RESUME with the frames acknowledged, RESUMED with those applied.
	net::FrameChannel &resume(const std::string &session, uint64_t acked, uint64_t *applied) {
		auto c = dial(handshake_ms_, handshake_ms_, [&](net::FrameChannel &ch) {
			net::send_message(ch, net::Resume{session, acked});
			*applied = net::expect_message<net::Resumed>(ch, handshake_ms_).applied;
		});
		return keep(std::move(c));
	}
	// Sticky: the connection being made fails at once, and any later one.
	void interrupt() {
		stop_ = true;
		std::lock_guard l(mu_);
		if (dialing_ >= 0)
			::shutdown(dialing_, SHUT_RDWR);
	}
	uint64_t bytes_sent() const {
		std::lock_guard l(mu_);
		uint64_t n = 0;
		for (const auto &c : all_)
			n += c->ch->bytes_sent();
		return n;
	}
	uint64_t bytes_received() const {
		std::lock_guard l(mu_);
		uint64_t n = 0;
		for (const auto &c : all_)
			n += c->ch->bytes_received();
		return n;
	}
	const std::string &description() const { return description_; }

private:
	struct Conn {
		UniqueFd fd;
		std::unique_ptr<net::Link> link;
		std::unique_ptr<net::FrameChannel> ch;
	};
	// Connects and shakes hands (`first`, if given, is the first exchange
	// after it), interruptible throughout.
	std::unique_ptr<Conn> dial(int connect_ms, int frames_ms,
	                           const std::function<void(net::FrameChannel &)> &first = {}) {
		auto c = std::make_unique<Conn>();
		c->fd = net::connect_tcp(destination_, connect_ms, &stop_);
		Dialing dialing(*this, c->fd.get());
		c->link = setup_.open(c->fd.get(), destination_, host_, handshake_ms_);
		c->ch = std::make_unique<net::FrameChannel>(*c->link, destination_);
		c->ch->client_handshake(frames_ms);
		if (first)
			first(*c->ch);
		return c;
	}
	net::FrameChannel &keep(std::unique_ptr<Conn> c) {
		std::lock_guard l(mu_);
		all_.push_back(std::move(c));
		return *all_.back()->ch;
	}
	// The socket interrupt() shuts down while a connection is being made.
	struct Dialing {
		Connections &c;
		Dialing(Connections &cs, int fd) : c(cs) {
			std::lock_guard l(c.mu_);
			if (c.stop_)
				fail(CLOUDLET_E_CANCELLED, "the handoff stopped");
			c.dialing_ = fd;
		}
		~Dialing() {
			std::lock_guard l(c.mu_);
			c.dialing_ = -1;
		}
	};
	std::string destination_, host_, description_;
	const net::LinkSetup &setup_;
	int handshake_ms_, timeout_ms_;
	mutable std::mutex mu_;
	std::vector<std::unique_ptr<Conn>> all_;
	int dialing_ = -1;
	std::atomic<bool> stop_{false};
};

std::string f2(double v) {
	char b[32];
	snprintf(b, sizeof b, "%.2f", v);
	return b;
}

} // namespace

HandoffInfo handoff_send(Context &ctx, const std::string &domain, const std::string &destination,
                         const HandoffOptions &o, Progress &progress) {
	auto t0 = Clock::now();
	int timeout_ms = o.timeout_s * 1000;
	net::LinkSetup link_setup(o.security, net::LinkSetup::Role::Client); // certificates checked before anything
	HandoffInfo info;
	info.peer = destination;
	auto conn = ctx.connection();
	virt::DomainPtr dom = virt::lookup_domain(*conn, domain);
	info.domain = virt::domain_name(dom.get());
	if (virt::RunState state = virt::run_state(dom.get()); !state.running())
		fail(CLOUDLET_E_INVALID_ARG, "domain " + info.domain + " is " + state.name() + "; handoff moves a running VM");
	LaunchSource src;
	describe_launch(ctx, dom.get(), progress, src);
	info.base_id = src.base.entry.id;

	// Authenticated before anything about the VM is sent.
	Connections conns(destination, link_setup, o.handshake_s * 1000, timeout_ms);
	progress.report("handshake", 0, 0);
	net::FrameChannel &ch = conns.open(-1);
	ctx.log().debug("handoff to " + destination + " over " + conns.description());

	recover_store(ctx); // what killed operations left (docs/reliability.md)
	store::BaseStore st(ctx.settings().store_dir);
	// If this process dies, the source VM runs again (docs/reliability.md).
	store::UndoJournal journal(st.root(), "handoff-send");
	engine::Deduper dd(src.dedup, st.root() + "/tmp");
	dd.use_ordinal_self_refs();
	engine::DirtyQueue queue(st.root() + "/tmp", o.queue_bytes);
	bool adaptive = o.codec == "auto";
	engine::CodecChooser chooser(adaptive, adaptive ? engine::CodecChoice{}
	                                                : engine::CodecChoice{chunk::codec_from_name(o.codec), o.level});
	format::OverlayHeader header = offer_header(src, o);
	engine::HandoffOutbound out(ch, queue, dd, chooser, outbound_source(src), o.downtime_ms / 1000.0, timeout_ms);
	qemu::StreamSink &sink = out.sink(header, [&] {
		net::send_message(ch, net::Offer{info.domain, format::header_json(header)});
		net::Accept accept = net::expect_message<net::Accept>(ch, timeout_ms);
		// A cut link while the VM runs: reconnect for as long as both sides wait.
		double window = std::min<double>(o.resume_s, accept.resume_seconds);
		if (!accept.resumable() || window <= 0)
			return;
		engine::OutboundResume r;
		r.window_s = window;
		r.reconnect = [&conns, session = accept.session](uint64_t acked, uint64_t *applied) -> net::FrameChannel & {
			return conns.resume(session, acked, applied);
		};
		r.interrupt = [&conns] { conns.interrupt(); };
		r.note = [&ctx](const std::string &line) { ctx.log().warn(line); };
		out.enable_resume(std::move(r));
	});

	// 1. Live: QEMU's passes into the queue while the VM runs; OFFER when
	// its RAM block table arrives, then the items.
	virt::MigrationCapture cap;
	try {
		virt::MigrationCaptureOptions co;
		co.live = true;
		// QEMU stops iterating when what is left fits half the downtime
		// target at the rate it measures — our pipeline's, through the
		// queue's backpressure; the queue's share is the other half.
		co.downtime_limit_ms = std::max(50u, o.downtime_ms / 2);
		// A guest that dirties faster than the link drains is throttled
		// by QEMU's auto-converge, in steps sized from the two rates
		// (engine/convergence.h) rather than QEMU's 20 % + 10 % ladder.
		co.on_status = [&](virt::OutgoingMigration &mig, const virt::MigrationStatus &s) {
			out.steer(mig, s, ctx.log());
		};
		progress.report("live", 0, 0);
		journal.resume_domain(virt::domain_uuid(dom.get())); // QEMU pauses it for its last pass
		cap = virt::capture_migration(dom.get(), true, sink, co, progress, ctx.log());
	} catch (...) {
		std::exception_ptr own = out.error();
		out.stop(std::current_exception()); // the capture already put the VM back as it was
		if (own)
			std::rethrow_exception(own); // the link's story is the better one
		throw;
	}
	auto paused_at = Clock::now();

	// 2. Paused: what changed on disk since it was read, the rest of the
	// queue, the device state; the destination restores.
	engine::OutboundCounts sent;
	try {
		// Paused: a cancel shuts the connection (the threads and a wait for
		// READY let go), the VM runs on here.
		CancelRelay relay(progress, [&out] {
			net::FrameChannel &ch = out.channel();
			ch.try_send(net::FrameType::Abort, net::Stop{CLOUDLET_E_CANCELLED, "cancelled by the caller"}.encode(),
			            engine::HandoffOutbound::kAbortWaitMs);
			ch.shutdown();
		});
		out.queue_changed_disk_chunks();
		out.drain();
		sent = out.counts();
		progress.report("final", 0, 0);
		net::send_message(out.channel(), net::Final{sent.memory_items, sent.disk_items, sent.stored_items,
		                                 std::move(cap.stream.device_state)});
		info.drain_seconds = cap.paused_seconds + since(paused_at); // from QEMU's pause
		auto tf = Clock::now();
		net::expect_message<net::Ready>(out.channel(), std::max(timeout_ms, 120000));
		info.restore_seconds = since(tf);
		net::send_message(out.channel(), net::Go{});
	} catch (...) {
		out.stop(std::current_exception());
		virt::restore_run_state(dom.get(), true, ctx.log());
		progress.check(); // cancelled: say so, not what the shut connection said
		throw;
	}

	// 3. GO sent: the destination resumes the VM and swaps its NICs.
	net::Running running;
	try {
		running = net::expect_message<net::Running>(out.channel(), timeout_ms);
	} catch (const Error &e) {
		// After GO: two copies rather than none (docs/protocols/handoff.md).
		virt::restore_run_state(dom.get(), true, ctx.log());
		fail(CLOUDLET_E_IO, std::string("the destination was told to run the VM but did not confirm (") + e.what() +
		                        "); the source VM runs again — the destination may be running it too");
	}
	if (!running.nic_error.empty())
		ctx.log().warn("the VM runs at the destination, but its NIC swap did not complete there: " + running.nic_error);
	info.uuid = running.uuid;
	info.macs = running.macs;
	// Paused here until the destination resumed it: RUNNING comes after the
	// NIC swap, which happens with the VM already running there.
	// From QEMU's pause: its final pass and the capture's check came first.
	info.downtime_seconds = std::max(0.0, cap.paused_seconds + since(paused_at) - running.nic_seconds);
	auto running_at = Clock::now();

	// 4. The destination runs it: the source's copy goes, with its files.
	std::string inst_dir = src.disks[0].file.substr(0, src.disks[0].file.find_last_of('/'));
	if (std::string why = virt::destroy_and_undefine(dom.get()); !why.empty())
		ctx.log().warn("handoff done but the source domain could not be destroyed: " + why);
	if (inst_dir.rfind(st.instances_dir() + "/", 0) == 0)
		store::remove_tree(inst_dir);
	auto cleaned_at = Clock::now();

	info.bytes_sent = conns.bytes_sent();
	info.bytes_received = conns.bytes_received();
	engine::ResumeCounts resumed = out.resume_counts();
	info.resumes = resumed.resumes;
	info.unacked_bytes = resumed.unacked_bytes;
	info.resent_bytes = resumed.resent_bytes;
	info.memory_items = sent.memory_items;
	info.disk_items = sent.disk_items;
	info.stored_items = sent.stored_items;
	info.raw_bytes = sent.raw_bytes;
	info.replaced = queue.replaced();
	info.codec = chooser.current().name();
	info.codec_switches = chooser.switches();
	const engine::LinkRate &link = out.link();
	double link_s = seconds_between(link.first_send(), link.last_ack());
	info.link_mbps = link_s > 0 ? double(info.bytes_sent) * 8 / link_s / 1e6 : 0;
	info.total_seconds = since(t0);
	const engine::SenderTimes &times = out.sender_times();
	ctx.log().debug("handoff timeline: total " + f2(info.total_seconds) + " s, first item after " +
	                f2(seconds_between(t0, link.first_send())) + " s, items " + f2(link_s) +
	                " s, NIC swap at the destination " + f2(running.nic_seconds) + " s, running there after " +
	                f2(seconds_between(t0, running_at)) + " s, source cleanup " +
	                f2(seconds_between(running_at, cleaned_at)) + " s; paused: QEMU's final pass " +
	                f2(cap.downtime_ms / 1000) + " s, then " + f2(cap.paused_seconds - cap.downtime_ms / 1000) +
	                " s to the capture's end (its RAM check " + f2(cap.check_seconds) + " s, " +
	                std::to_string(cap.corrected_pages) + " pages corrected); sender thread: waiting " +
	                f2(times.wait) + " s, dedup " + f2(times.dedup) + " s, compression " + f2(times.compress) +
	                " s, socket " + f2(times.socket) + " s; codec " + info.codec);
	return info;
}

} // namespace cloudlet::ops
