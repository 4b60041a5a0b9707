// handoff receive: the destination side (docs/handoff.md). Items are applied
// as they arrive (the newest version of each chunk wins) and fed on to a
// QEMU that libvirt starts at once; on FINAL the VM completes its restore
// paused, READY, and is resumed only on GO. Until RUNNING has been sent, any
// failure removes everything this handoff created here.
#include "ops/handoff.h"

#include "engine/handoff_inbound.h"
#include "net/handoff_gate.h"
#include "net/handoff_messages.h"
#include "net/handoff_wire.h"
#include "net/tcp.h"
#include "ops/launch_target.h"
#include "util/cancel_relay.h"
#include "util/clock.h"
#include "util/error.h"
#include "virt/domain.h"
#include "virt/streamed_restore.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <mutex>
#include <vector>

namespace cloudlet::ops {

namespace {

// The items' connection failed with `why` after `applied` frames: waits
// (within the window) for the source to come back with RESUME, answers
// RESUMED, and makes that connection the current one (`adopt`). A source
// that does not come back: `why`, saying so.
net::FrameChannel &wait_for_resume(net::HandoffGate &gate, uint64_t applied, const Error &why, int window_s,
                                   Progress &progress, const Logger &log,
                                   const std::function<net::FrameChannel *(net::AdmittedPeer)> &adopt) {
	progress.check(); // a connection shut by a cancel is not a cut
	log.warn(std::string("handoff link lost during the items (") + why.what() + ") after " + std::to_string(applied) +
	         " ITEMS frames; waiting up to " + std::to_string(window_s) + " s for the source to resume");
	auto deadline = Clock::now() + std::chrono::seconds(window_s);
	for (;;) {
		int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
		net::AdmittedPeer p;
		try {
			p = gate.resumed(std::max(left, 0), progress);
		} catch (const Error &e) {
			if (e.status() != CLOUDLET_E_TIMEOUT)
				throw;
			throw Error(why.status(), std::string(why.what()) + "; the source did not resume within " +
			                              std::to_string(window_s) + " s");
		}
		net::Resume r = net::Resume::decode(p.first.payload, p.peer);
		if (r.acked > applied)
			fail(CLOUDLET_E_CORRUPT, p.peer + " resumed saying " + std::to_string(r.acked) +
			                             " ITEMS frames were acknowledged where " + std::to_string(applied) +
			                             " were applied");
		try {
			net::send_message(*p.channel, net::Resumed{applied});
		} catch (const Error &e) {
			if (!net::connection_lost(e))
				throw;
			continue; // that one dropped too: wait on for the next
		}
		log.warn("handoff from " + p.peer + " resumed after ITEMS frame " + std::to_string(applied));
		return *adopt(std::move(p));
	}
}

} // namespace

HandoffListener::HandoffListener(Context &ctx, const std::string &address)
    : ctx_(ctx), listener_(std::make_unique<net::TcpListener>(address)) {}

HandoffListener::~HandoffListener() = default;

unsigned HandoffListener::port() const { return listener_->port(); }

HandoffInfo HandoffListener::receive(const HandoffOptions &o, Progress &progress) {
	int timeout_ms = o.timeout_s * 1000;
	net::GateLimits limits;
	limits.handshake_ms = o.handshake_s * 1000;
	// Handshakes run concurrently in the gate while this waits (cancellable)
	// for the first source that authenticates; wrong credentials, strangers
	// and slow peers end there, one warning each, nothing sent or created.
	const Logger &log = ctx_.log();
	net::HandoffGate gate(
	    *listener_, o.security, limits, [&log](const std::string &line) { log.warn(line); }, o.reload_security);
	net::AdmittedPeer peer = gate.next(progress);
	auto t0 = Clock::now();
	HandoffInfo info;
	info.peer = peer.peer;
	log.debug("handoff from " + info.peer + " over " + peer.link->description());
	// The connection in use: the first, or the one a resume brought; all are
	// kept to the end (their bytes count).
	std::mutex conn_mu;
	std::vector<net::AdmittedPeer> peers;
	peers.push_back(std::move(peer));
	net::FrameChannel *current = peers.back().channel.get();
	auto ch_now = [&]() -> net::FrameChannel & {
		std::lock_guard l(conn_mu);
		return *current;
	};
	net::FrameChannel &ch = *current; // until ACCEPT
	net::Frame first = std::move(peers.front().first);
	// No resume is routed here once this returns (the interrupt below uses these locals).
	struct NoMoreResumes {
		net::HandoffGate &g;
		~NoMoreResumes() { g.expect_resume("", {}); }
	} no_more_resumes{gate};

	LaunchCleanup cleanup;
	LaunchTarget t;
	try {
		if (first.type != net::FrameType::Offer) {
			ch.fail_on_peer_stop(first);
			fail(CLOUDLET_E_CORRUPT, info.peer + " sent " + net::frame_type_name(first.type) +
			                             " where OFFER was expected");
		}
		net::Offer offer = net::Offer::decode(first.payload, info.peer);
		format::OverlayHeader h = format::parse_header(offer.header, "handoff OFFER from " + info.peer);
		LaunchRequest req;
		req.name = o.name.empty() ? offer.name : o.name;
		req.virt_type = o.virt_type;
		req.uuid = o.uuid;
		req.nic = o.nic;
		req.what = "the handoff";
		req.space_needed = (64ull << 20) + h.total_pages * 4096;
		try {
			prepare_launch(ctx_, h, req, progress, t, cleanup);
		} catch (const Error &e) {
			ch.send(net::FrameType::Refuse, net::Stop{e.status(), e.what()}.encode());
			throw;
		}
		t.applier->set_versioned();
		net::Accept accept;
		if (o.resume_s > 0) {
			accept.session = net::new_session_id();
			accept.resume_seconds = o.resume_s;
			// A source that comes back makes the old connection let go.
			gate.expect_resume(accept.session, [&] {
				std::lock_guard l(conn_mu);
				current->shutdown();
			});
		}
		net::send_message(ch, accept);
		info.domain = t.name;
		info.uuid = t.uuid;
		info.dir = t.dir;
		info.base_id = t.base_id;

		// QEMU starts now, while items still come: libvirt restores from a
		// FIFO that the inbound engine writes as items arrive. The disk
		// layers stay empty and valid until FINAL rewrites them in place;
		// QEMU holds them open inactive during an incoming migration and
		// re-reads them when it completes (docs/handoff.md).
		std::string xml = launch_xml(t, h);
		cleanup.domain = t.name;
		engine::HandoffInbound::Relink relink;
		if (accept.resumable())
			relink = [&](uint64_t applied, const Error &why) -> net::FrameChannel & {
				return wait_for_resume(gate, applied, why, o.resume_s, progress, log, [&](net::AdmittedPeer p) {
					std::lock_guard l(conn_mu);
					peers.push_back(std::move(p));
					current = peers.back().channel.get();
					return current;
				});
			};
		engine::HandoffInbound in(ch, *t.applier, static_cast<uint8_t>(h.disks.size()), timeout_ms, relink);
		progress.report("items", 0, 0);
		// Until GO, a cancel ends the wait for the source's next frame at
		// once: the connection is shut down (a resume wait checks the cancel).
		auto relay = std::make_unique<CancelRelay>(progress, [&] {
			std::lock_guard l(conn_mu);
			// Told why (sends are serialised with the ACKs), the source runs on at once.
			current->try_send(net::FrameType::Abort,
			                  net::Stop{CLOUDLET_E_CANCELLED, "cancelled by the caller"}.encode(), 300);
			current->shutdown();
		});
		virt::restore_streamed(
		    t.conn->get(), t.dir + "/restore.fifo", [&](qemu::ByteSink &sink) { in.produce(sink, xml); }, true,
		    progress);
		ctx_.log().debug("handoff FINAL: disk layers written in " + std::to_string(in.finish_seconds()) +
		                 " s; device state to restore done " + std::to_string(since(in.device_state_at())) + " s");
		info.memory_items = in.counts().memory_items;
		info.disk_items = in.counts().disk_items;
		info.raw_bytes = in.counts().raw_bytes;
		info.stored_items = t.applier->stored_chunks();

		gate.expect_resume("", {}); // FINAL came: the source is paused, and never resumes from here
		net::send_message(ch_now(), net::Ready{t.name, t.uuid});
		net::expect_message<net::Go>(ch_now(), timeout_ms);
		relay.reset(); // GO: from here the VM is this cloudlet's (docs/protocols/handoff.md "Failure")

		std::string what = "cannot resume the handed-off VM " + t.name;
		virt::DomainPtr dom = virt::require_domain(*t.conn, t.name, what);
		virt::resume(dom.get(), what);
		auto tn = Clock::now();
		// From here the VM running here is the VM: it may already have done
		// work the source's paused copy never saw. A NIC swap that fails (a
		// guest that does not act on the unplug in time) therefore does not
		// undo the handoff: the VM stays, with the NICs it has, and both
		// sides say so. docs/handoff.md "Safety".
		net::Running running;
		running.name = t.name;
		running.uuid = t.uuid;
		try {
			running.macs = virt::swap_nics(dom.get(), o.nic, progress).macs;
		} catch (const Error &e) {
			running.nic_error = e.what();
			running.macs = virt::domain_macs(dom.get());
			ctx_.log().warn("the handed-off VM " + t.name + " runs here, but its NIC swap did not complete: " +
			                running.nic_error);
		}
		running.nic_seconds = since(tn);
		info.macs = running.macs;
		net::send_message(ch_now(), running);
		cleanup.keep();
	} catch (const Error &e) {
		if (progress.cancelled() && e.status() != CLOUDLET_E_CANCELLED)
			fail(CLOUDLET_E_CANCELLED, "cancelled by the caller"); // the relay's shut connection says only "closed"
		try {
			if (!net::connection_lost(e))
				ch_now().send(net::FrameType::Abort, net::Stop{e.status(), e.what()}.encode());
		} catch (...) {
		}
		throw;
	}
	for (const auto &p : peers) {
		info.bytes_sent += p.channel->bytes_sent();
		info.bytes_received += p.channel->bytes_received();
	}
	info.resumes = peers.size() - 1;
	info.total_seconds = since(t0);
	return info;
}

} // namespace cloudlet::ops
