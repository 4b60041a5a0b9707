#include "engine/handoff_inbound.h"

#include "engine/handoff_items.h"
#include "net/handoff_messages.h"
#include "save_image.h"
#include "util/error.h"

#include <algorithm>
#include <vector>

namespace cloudlet::engine {

HandoffInbound::HandoffInbound(net::FrameChannel &ch, OverlayApplier &applier, uint8_t spaces, int timeout_ms,
                               Relink relink)
    : ch_(&ch), relink_(std::move(relink)), applier_(applier), spaces_(spaces), timeout_ms_(timeout_ms) {}

net::FrameChannel &HandoffInbound::receive_frame(net::Frame &f) {
	for (;;) {
		try {
			f = ch_->receive(timeout_ms_);
			return *ch_;
		} catch (const Error &e) {
			if (!relink_ || !net::connection_lost(e))
				throw;
			ch_ = &relink_(counts_.frames, e);
		}
	}
}

// An ACK that cannot be sent is not lost work: the frame is applied, and
// RESUMED tells the source so when it comes back.
void HandoffInbound::acknowledge() {
	try {
		net::send_message(*ch_, net::Ack{counts_.frames, counts_.raw_bytes});
	} catch (const Error &e) {
		if (!relink_ || !net::connection_lost(e))
			throw;
		ch_->shutdown(); // the next receive fails and relinks
	}
}

void HandoffInbound::produce(qemu::ByteSink &sink, const std::string &domain_xml) {
	std::vector<uint8_t> head = qemu::encode_save_header(domain_xml, "", false);
	sink.write(head.data(), head.size());
	qemu::StreamWriter w(sink, applier_.stream_info());
	w.begin();
	w.all_pages(applier_, qemu::StreamWriter::kFreshRam);
	std::vector<uint64_t> changed;
	net::Frame f;
	for (;;) {
		net::FrameChannel &ch = receive_frame(f);
		if (f.type == net::FrameType::Final)
			break;
		ch.fail_on_peer_stop(f);
		if (f.type != net::FrameType::Items)
			fail(CLOUDLET_E_CORRUPT, ch.peer() + " sent " + net::frame_type_name(f.type) + " during the items");
		changed.clear();
		counts_.raw_bytes += decode_item_batch(
		    f.payload, spaces_, [&](const chunk::ChunkRecord &r, uint64_t v, const uint8_t *data) {
			    if (applier_.apply_versioned(r, data, v) && r.space == chunk::kMemorySpace)
				    changed.push_back(r.chunk);
			    (r.space == chunk::kMemorySpace ? counts_.memory_items : counts_.disk_items)++;
		    });
		counts_.frames++;
		acknowledge();
		std::sort(changed.begin(), changed.end());
		changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
		w.pages(applier_, changed);
	}
	net::Final final = net::Final::decode(f.payload, ch_->peer());
	applier_.on_device_state(final.device_state);
	auto tf = Clock::now();
	applier_.finish(); // the disk layers, before QEMU re-reads them
	finish_s_ = since(tf);
	device_state_at_ = Clock::now();
	w.end(final.device_state);
}

} // namespace cloudlet::engine
