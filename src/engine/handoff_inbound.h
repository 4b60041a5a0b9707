// The destination's side of a handoff's items (docs/handoff.md): the
// restore stream a QEMU reads while the items still arrive. It starts with
// the save header, the RAM block table and a first pass over every page (the
// base's where nothing came yet); each ITEMS frame is applied (the newest
// version of each chunk wins), acknowledged, and followed by a pass over the
// pages it changed; at FINAL the disk layers are completed (QEMU re-reads
// them when the incoming migration ends) and the device state ends the
// stream. A connection that drops (or falls silent) during the items is
// replaced through `relink`: the source comes back with RESUME, and the
// items go on from the first frame not applied (docs/protocols/handoff.md
// "Resume"); QEMU's stream simply waits meanwhile. The operation
// (ops/handoff_receive.cc) hands produce() to virt::restore_streamed.
#pragma once

#include "engine/overlay_apply.h"
#include "net/handoff_wire.h"
#include "stream_writer.h"
#include "util/clock.h"
#include "util/error.h"

#include <cstdint>
#include <functional>
#include <string>

namespace cloudlet::engine {

struct InboundCounts {
	uint64_t frames = 0;                       // ITEMS frames applied
	uint64_t memory_items = 0, disk_items = 0; // items received (newer versions or not)
	uint64_t raw_bytes = 0;                    // their bytes before compression
};

class HandoffInbound {
public:
	// After the connection failed with `why` (CLOUDLET_E_IO or _TIMEOUT),
	// `applied` ITEMS frames in: the channel the source came back on, which
	// has been told RESUMED; or throws (why, if nobody came back).
	using Relink = std::function<net::FrameChannel &(uint64_t applied, const Error &why)>;

	// `applier`: set_versioned(), for the OFFER's header; `spaces`: its
	// disks; `relink` empty: a failed connection ends the handoff.
	HandoffInbound(net::FrameChannel &ch, OverlayApplier &applier, uint8_t spaces, int timeout_ms, Relink relink = {});
	// Writes the whole restore stream of `domain_xml`'s VM into `sink`,
	// receiving until FINAL. ABORT from the peer is its error; another
	// frame than ITEMS or FINAL, or a bad one, is CLOUDLET_E_CORRUPT.
	void produce(qemu::ByteSink &sink, const std::string &domain_xml);

	const InboundCounts &counts() const { return counts_; }
	double finish_seconds() const { return finish_s_; }                 // completing the disk layers
	Clock::time_point device_state_at() const { return device_state_at_; } // when the device state went out

private:
	net::FrameChannel &receive_frame(net::Frame &f);
	void acknowledge();
	net::FrameChannel *ch_;
	Relink relink_;
	OverlayApplier &applier_;
	uint8_t spaces_;
	int timeout_ms_;
	InboundCounts counts_;
	double finish_s_ = 0;
	Clock::time_point device_state_at_ = Clock::now();
};

} // namespace cloudlet::engine
