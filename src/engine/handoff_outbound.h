// The source's side of a handoff's items (docs/handoff.md): every page
// version QEMU's live migration yields and every chunk the disks' own layers
// hold go through the dirty queue and dedup into ITEMS frames, on two
// threads:
//   sender: the disks' own chunks first, then the queue — dedup against the
//           base and what was sent — batches of about 1 MiB, compressed by
//           the codec the chooser picks for the measured link;
//   acker:  reads one ACK per ITEMS frame; the ACKs' pace measures the link
//           (LinkRate), which sizes the queue to what the pipeline moves in
//           half the downtime target and steers QEMU's auto-converge.
// The operation (ops/handoff_send.cc) sequences it: sink() into the
// capture (OFFER when QEMU's RAM block table arrives, then the threads),
// queue_changed_disk_chunks() and drain() once the VM is paused, then FINAL
// with counts().
//
// Resume (docs/protocols/handoff.md "Resume"): with enable_resume(), the
// ITEMS frames not yet acknowledged are kept (at most kMaxRetainedBytes:
// the sender waits beyond), and a connection that drops or falls silent
// while the VM still runs is replaced within the window: the thread that
// saw it fail reconnects (the other waits), RESUME/RESUMED say where the
// destination is, and the frames after that go out again. Once QEMU has
// paused the VM for its last pass nothing waits for a reconnect: a cut then
// fails the handoff, and the source runs on.
#pragma once

#include "engine/codec_chooser.h"
#include "engine/dedup.h"
#include "engine/dirty_queue.h"
#include "engine/link_rate.h"
#include "format/overlay_file.h"
#include "net/handoff_wire.h"
#include "stream_parser.h"
#include "util/error.h"
#include "util/log.h"
#include "virt/qemu_migration.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace cloudlet::engine {

class ItemBatch;

// The running instance the items come from.
struct OutboundSource {
	size_t disks = 0; // spaces 1 … disks
	// Every 4 KiB chunk disk `d`'s own copy-on-write layer holds, in disk
	// order: `f(chunk, data)` (ops/launch_source.h for_each_own_chunk).
	std::function<void(size_t d, const std::function<void(uint64_t chunk, const uint8_t *data)> &f)> for_each_own_chunk;
	const qemu::StreamInfo *base_memory = nullptr; // the base's RAM layout
	DedupBase *dedup = nullptr; // what `dd` compares with: told whether QEMU's layout is the base's
};

struct OutboundCounts {
	uint64_t memory_items = 0, disk_items = 0, stored_items = 0; // items sent, and those with content
	uint64_t raw_bytes = 0;                                      // ITEMS bytes before compression
};

// Where the sender thread's time went, in seconds.
struct SenderTimes {
	double wait = 0, dedup = 0, compress = 0, socket = 0;
};

// How a cut link is replaced (HandoffOutbound::enable_resume).
struct OutboundResume {
	double window_s = 0; // from the cut: how long reconnecting may take
	// A new connection to the destination on which RESUME {session,
	// `acked`} was answered by RESUMED: its channel (the caller keeps it
	// until the handoff ends) and, in `*applied`, the ITEMS frames applied
	// there. Throws if this attempt failed.
	std::function<net::FrameChannel &(uint64_t acked, uint64_t *applied)> reconnect;
	// From another thread (stop(), the pause): a reconnect under way fails at once.
	std::function<void()> interrupt;
	// One line for the log: a cut, a resume, a failed attempt.
	std::function<void(const std::string &)> note;
};

struct ResumeCounts {
	uint64_t resumes = 0;       // new connections the destination answered RESUMED on
	uint64_t unacked_bytes = 0; // ITEMS frame bytes (framed) not acknowledged at each RESUMED, summed
	uint64_t resent_bytes = 0;  // of them, sent again (the rest had been applied)
};

class HandoffOutbound {
public:
	static constexpr uint64_t kMaxRetainedBytes = 32u << 20;

	// `downtime_target_s`: the queue holds what the pipeline moves in half of
	// it; `timeout_ms`: silence before an ACK that ends the handoff.
	HandoffOutbound(net::FrameChannel &ch, DirtyQueue &queue, Deduper &dd, CodecChooser &chooser, OutboundSource src,
	                double downtime_target_s, int timeout_ms);
	~HandoffOutbound(); // stop() if the threads still run
	HandoffOutbound(const HandoffOutbound &) = delete;
	HandoffOutbound &operator=(const HandoffOutbound &) = delete;

	// The capture's sink (called on its receiver thread). When QEMU's RAM
	// block table arrives: its layout into `header`, then `offer()` (the
	// operation's OFFER and ACCEPT), then the threads start; then every
	// page version into the queue. A failure of `offer` stays the error().
	qemu::StreamSink &sink(format::OverlayHeader &header, std::function<void()> offer);
	// For each status poll of the live migration: auto-converge's steps
	// from the guest's dirty rate and what the pipeline moves
	// (engine/convergence.h), set when they change (logged at debug).
	void steer(virt::OutgoingMigration &mig, const virt::MigrationStatus &st, const Logger &log);
	// Keep unacknowledged frames and replace a cut link (call before the
	// threads start: from the OFFER callback, once ACCEPT said the
	// destination resumes).
	void enable_resume(OutboundResume r);
	// On failure: the queue aborts, the socket is shut down (a thread
	// inside send or receive returns), both threads are joined. With
	// `why`, the destination is told it in an ABORT first unless a frame
	// holds the connection for longer than kAbortWaitMs (a dead link): it
	// then rolls back at once instead of waiting for a resume that will
	// not come.
	void stop(const std::exception_ptr &why = nullptr);
	static constexpr int kAbortWaitMs = 300;
	// What a thread or the sink failed with (the link's story, the better
	// one when the capture fails too), or null.
	std::exception_ptr error() const;

	// With the VM paused: the chunks the disks' own layers hold now that
	// were not sent with this content, into the queue.
	void queue_changed_disk_chunks();
	// No more pages: the queue is drained and acknowledged, both threads
	// end. Rethrows error().
	void drain();

	// After drain() or stop().
	OutboundCounts counts() const;
	const LinkRate &link() const { return rate_; }
	ResumeCounts resume_counts() const;
	// The connection in use now (a resume replaces the first one).
	net::FrameChannel &channel() const;
	const SenderTimes &sender_times() const { return times_; }

private:
	class QueueSink;
	void start();
	void fail_with(std::exception_ptr e);
	void add_item(ItemBatch &batch, uint8_t space, uint64_t chunk, const uint8_t *data, uint64_t version);
	void send_batch(ItemBatch &batch);
	void sender_thread();
	void ack_thread();
	void on_final_pass(); // QEMU paused the VM: no more resumes
	// A send or receive on the connection of generation `gen` failed with
	// `why`: returns once a resumed connection replaced it (here or on the
	// other thread); throws if it cannot be (not a lost link, no resume,
	// the VM paused, the window over).
	void relink(uint64_t gen, const Error &why);
	void resend_after(uint64_t applied, net::FrameChannel &ch); // retained frames past `applied`
	struct State;
	DirtyQueue &queue_;
	Deduper &dd_;
	CodecChooser &chooser_;
	OutboundSource src_;
	double downtime_target_s_;
	int timeout_ms_;
	std::unique_ptr<State> st_;
	std::optional<OutboundResume> resume_; // set before the threads start
	std::unique_ptr<QueueSink> sink_;
	LinkRate rate_;      // under State::mu
	SenderTimes times_;  // the sender thread's
};

} // namespace cloudlet::engine
