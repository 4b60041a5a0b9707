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
#include "util/clock.h"
#include "util/error.h"
#include "virt/domain.h"
#include "virt/streamed_restore.h"

namespace cloudlet::ops {

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
	net::FrameChannel &ch = *peer.channel;
	log.debug("handoff from " + info.peer + " over " + peer.link->description());

	LaunchCleanup cleanup;
	LaunchTarget t;
	try {
		if (peer.first.type != net::FrameType::Offer) {
			ch.fail_on_peer_stop(peer.first);
			fail(CLOUDLET_E_CORRUPT, info.peer + " sent " + net::frame_type_name(peer.first.type) +
			                             " where OFFER was expected");
		}
		net::Offer offer = net::Offer::decode(peer.first.payload, info.peer);
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
		net::send_message(ch, net::Accept{});
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
		engine::HandoffInbound in(ch, *t.applier, static_cast<uint8_t>(h.disks.size()), timeout_ms);
		progress.report("items", 0, 0);
		virt::restore_streamed(
		    t.conn->get(), t.dir + "/restore.fifo", [&](qemu::ByteSink &sink) { in.produce(sink, xml); }, true,
		    progress);
		ctx_.log().debug("handoff FINAL: disk layers written in " + std::to_string(in.finish_seconds()) +
		                 " s; device state to restore done " + std::to_string(since(in.device_state_at())) + " s");
		info.memory_items = in.counts().memory_items;
		info.disk_items = in.counts().disk_items;
		info.raw_bytes = in.counts().raw_bytes;
		info.stored_items = t.applier->stored_chunks();

		net::send_message(ch, net::Ready{t.name, t.uuid});
		net::expect_message<net::Go>(ch, timeout_ms);

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
		net::send_message(ch, running);
		cleanup.keep();
	} catch (const Error &e) {
		try {
			if (e.status() != CLOUDLET_E_IO && e.status() != CLOUDLET_E_TIMEOUT)
				ch.send(net::FrameType::Abort, net::Stop{e.status(), e.what()}.encode());
		} catch (...) {
		}
		throw;
	}
	info.bytes_sent = ch.bytes_sent();
	info.bytes_received = ch.bytes_received();
	info.total_seconds = since(t0);
	return info;
}

} // namespace cloudlet::ops
