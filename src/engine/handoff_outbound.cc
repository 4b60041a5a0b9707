#include "engine/handoff_outbound.h"

#include "chunk/chunk_ref.h"
#include "engine/convergence.h"
#include "engine/handoff_items.h"
#include "net/handoff_messages.h"
#include "util/clock.h"
#include "util/error.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace cloudlet::engine {

using net::Stop;

namespace {

constexpr uint64_t kBatchRawBytes = 1u << 20; // an ITEMS frame's share before compression

std::string seconds_text(double s) { return std::to_string(static_cast<long long>(s + 0.5)) + " s"; }

} // namespace

// Everything the sink and the two threads share.
struct HandoffOutbound::State {
	std::atomic<uint64_t> version{0}; // when content was read: over memory and disk together
	std::mutex mu;
	std::condition_variable cv;
	std::thread sender, acker;
	bool sender_done = false, failed = false;
	std::exception_ptr error;
	std::unordered_set<uint64_t> sent;                // chunks sent at least once
	std::unordered_map<uint64_t, uint64_t> disk_sent; // disk chunk -> XXH3 of the content sent
	OutboundCounts counts;
	std::optional<ThrottleSteps> steps_set;
	// The connection, and what a resume needs.
	net::FrameChannel *ch = nullptr;
	uint64_t generation = 0; // bumped by each resume
	bool relinking = false;  // a thread is reconnecting: the other waits
	bool paused = false;     // QEMU paused the VM for its last pass
	struct Retained {
		uint64_t index; // 1-based, as ACKs count
		std::vector<uint8_t> payload;
	};
	std::deque<Retained> retained; // sent, not acknowledged (with resume only)
	uint64_t retained_bytes = 0;
	// What the retained frames are on the wire (as a resume sends them again).
	uint64_t retained_framed() const { return retained_bytes + retained.size() * net::kFrameOverhead; }
	// The destination has frames 1 … `index`: their copies go.
	void drop_retained_through(uint64_t index) {
		while (!retained.empty() && retained.front().index <= index) {
			retained_bytes -= retained.front().payload.size();
			retained.pop_front();
		}
	}
	ResumeCounts resume;
};

// The launch layout into the header and the OFFER when QEMU's RAM block
// table arrives; then every page version into the queue.
class HandoffOutbound::QueueSink : public qemu::StreamSink {
public:
	QueueSink(HandoffOutbound &out, format::OverlayHeader &h, std::function<void()> offer)
	    : out_(out), h_(h), offer_(std::move(offer)), zero_(chunk::kChunkSize, 0) {}
	void on_final_pass() override { out_.on_final_pass(); }
	void on_ram_blocks(const qemu::StreamInfo &info) override {
		format::set_ram_layout(h_, info);
		// Same-position comparison only makes sense if pages line up.
		out_.src_.dedup->same_memory_layout = qemu::same_ram_layout(out_.src_.base_memory->blocks, info.blocks);
		try {
			offer_();
		} catch (...) {
			// The capture reports a failing sink in its own words; keep
			// the destination's (a refusal says why).
			out_.fail_with(std::current_exception());
			throw;
		}
		out_.start();
	}
	void on_page(uint32_t, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t) override {
		if (!data) {
			if (fill) {
				std::vector<uint8_t> f(chunk::kChunkSize, fill);
				out_.queue_.put(chunk::pack_ref(chunk::kMemorySpace, linear), f.data(), ++out_.st_->version);
				return;
			}
			data = zero_.data();
		}
		out_.queue_.put(chunk::pack_ref(chunk::kMemorySpace, linear), data, ++out_.st_->version);
	}

private:
	HandoffOutbound &out_;
	format::OverlayHeader &h_;
	std::function<void()> offer_;
	std::vector<uint8_t> zero_;
};

HandoffOutbound::HandoffOutbound(net::FrameChannel &ch, DirtyQueue &queue, Deduper &dd, CodecChooser &chooser,
                                 OutboundSource src, double downtime_target_s, int timeout_ms)
    : queue_(queue), dd_(dd), chooser_(chooser), src_(std::move(src)), downtime_target_s_(downtime_target_s),
      timeout_ms_(timeout_ms), st_(std::make_unique<State>()) {
	st_->ch = &ch;
}

HandoffOutbound::~HandoffOutbound() {
	if (st_->sender.joinable() || st_->acker.joinable())
		stop(); // an error left the threads running
}

qemu::StreamSink &HandoffOutbound::sink(format::OverlayHeader &header, std::function<void()> offer) {
	sink_ = std::make_unique<QueueSink>(*this, header, std::move(offer));
	return *sink_;
}

void HandoffOutbound::enable_resume(OutboundResume r) { resume_ = std::move(r); }

net::FrameChannel &HandoffOutbound::channel() const {
	std::lock_guard<std::mutex> l(st_->mu);
	return *st_->ch;
}

ResumeCounts HandoffOutbound::resume_counts() const {
	std::lock_guard<std::mutex> l(st_->mu);
	return st_->resume;
}

void HandoffOutbound::on_final_pass() {
	bool reconnecting;
	{
		std::lock_guard<std::mutex> l(st_->mu);
		st_->paused = true;
		reconnecting = st_->relinking;
		st_->cv.notify_all();
	}
	// The downtime must not wait for a link: a reconnect under way gives up.
	if (reconnecting && resume_ && resume_->interrupt)
		resume_->interrupt();
}

void HandoffOutbound::relink(uint64_t gen, const Error &why) {
	if (!net::connection_lost(why))
		throw why;
	std::unique_lock<std::mutex> l(st_->mu);
	for (;;) {
		if (st_->failed)
			throw why;
		if (st_->generation != gen)
			return; // the other thread replaced it already
		if (!st_->relinking)
			break;
		st_->cv.wait(l);
	}
	if (!resume_ || st_->paused)
		throw why;
	st_->relinking = true;
	net::FrameChannel *old = st_->ch;
	uint64_t acked = rate_.frames_acked();
	uint64_t unacked = st_->retained_framed();
	l.unlock();
	old->shutdown(); // the other thread, inside a send or receive on it, lets go
	std::string peer = old->peer();
	if (resume_->note)
		resume_->note("handoff link to " + peer + " lost (" + why.what() + ") with " + std::to_string(unacked) +
		              " bytes of items unacknowledged; reconnecting for up to " + seconds_text(resume_->window_s));
	auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(resume_->window_s * 1000));
	std::string last = "no attempt";
	for (int attempt = 1;; attempt++) {
		try {
			if (attempt > 1) {
				std::lock_guard<std::mutex> g(st_->mu);
				acked = rate_.frames_acked(); // a failed attempt may have got a RESUMED that counted on
			}
			uint64_t applied = 0;
			net::FrameChannel &ch = resume_->reconnect(acked, &applied);
			uint64_t sent;
			{
				std::lock_guard<std::mutex> g(st_->mu);
				sent = rate_.frames_sent();
			}
			if (applied < acked || applied > sent)
				fail(CLOUDLET_E_CORRUPT, peer + " resumed at ITEMS frame " + std::to_string(applied) + ", outside " +
				                             std::to_string(acked) + " … " + std::to_string(sent));
			{
				std::lock_guard<std::mutex> g(st_->mu);
				st_->resume.resumes++; // a connection the destination resumed on (as it counts them)
			}
			resend_after(applied, ch);
			std::lock_guard<std::mutex> g(st_->mu);
			st_->ch = &ch;
			st_->generation++;
			st_->relinking = false;
			st_->cv.notify_all();
			if (resume_->note)
				resume_->note("handoff to " + peer + " resumed at ITEMS frame " + std::to_string(applied + 1) +
				              " (attempt " + std::to_string(attempt) + ")");
			return;
		} catch (const Error &e) {
			last = e.what();
			if (resume_->note)
				resume_->note("handoff to " + peer + ": resume attempt " + std::to_string(attempt) + " failed: " + last);
			// Another attempt may mend a lost connection (the destination not
			// listening yet, the link still down), not a refusal.
			if (!net::connection_lost(e))
				break;
		}
		l.lock();
		st_->cv.wait_for(l, std::chrono::milliseconds(500), [&] { return st_->failed || st_->paused; });
		bool over = st_->failed || st_->paused || Clock::now() >= deadline;
		l.unlock();
		if (over)
			break;
	}
	l.lock();
	bool paused = st_->paused;
	st_->relinking = false;
	st_->cv.notify_all();
	l.unlock();
	throw Error(why.status(), std::string(why.what()) + "; " +
	                              (paused ? "QEMU paused the VM for its last pass, so the handoff does not wait for a "
	                                        "reconnect"
	                                      : "not resumed within " + seconds_text(resume_->window_s)) +
	                              " (last attempt: " + last + ")");
}

void HandoffOutbound::resend_after(uint64_t applied, net::FrameChannel &ch) {
	// Only this thread touches the retained frames while relinking: the
	// sender waits before it adds one, the acker before it drops one.
	std::vector<const std::vector<uint8_t> *> again;
	{
		std::lock_guard<std::mutex> l(st_->mu);
		// Unacknowledged when the destination said where it is: what a
		// resume could have to send again (framed, as sent).
		st_->resume.unacked_bytes += st_->retained_framed();
		st_->drop_retained_through(applied);
		rate_.resumed(applied, Clock::now());
		for (const auto &r : st_->retained)
			again.push_back(&r.payload);
	}
	for (const auto *p : again) {
		ch.send(net::FrameType::Items, *p);
		std::lock_guard<std::mutex> l(st_->mu);
		st_->resume.resent_bytes += p->size() + net::kFrameOverhead;
	}
}

void HandoffOutbound::start() {
	st_->sender = std::thread([this] { sender_thread(); });
	st_->acker = std::thread([this] { ack_thread(); });
}

void HandoffOutbound::stop(const std::exception_ptr &why) {
	queue_.abort();
	bool relinking;
	{
		std::lock_guard<std::mutex> l(st_->mu);
		st_->failed = true;
		relinking = st_->relinking;
		st_->cv.notify_all();
	}
	if (why && !relinking) {
		// Sends are serialised: this waits for a frame in progress, but not
		// for long (a frame stuck on a dead link).
		Stop stop{CLOUDLET_E_IO, "the source stopped"};
		try {
			std::rethrow_exception(why);
		} catch (const Error &e) {
			stop = Stop{e.status(), e.what()};
		} catch (const std::exception &e) {
			stop.message = e.what();
		} catch (...) {
		}
		channel().try_send(net::FrameType::Abort, stop.encode(), kAbortWaitMs);
	}
	channel().shutdown(); // unblocks a thread inside send/recv
	if (resume_ && resume_->interrupt)
		resume_->interrupt(); // and one inside a reconnect
	if (st_->sender.joinable())
		st_->sender.join();
	if (st_->acker.joinable())
		st_->acker.join();
}

void HandoffOutbound::fail_with(std::exception_ptr e) {
	std::lock_guard<std::mutex> l(st_->mu);
	if (!st_->error)
		st_->error = e;
	st_->failed = true;
	st_->cv.notify_all();
	queue_.abort();
}

std::exception_ptr HandoffOutbound::error() const {
	std::lock_guard<std::mutex> l(st_->mu);
	return st_->error;
}

OutboundCounts HandoffOutbound::counts() const {
	std::lock_guard<std::mutex> l(st_->mu);
	return st_->counts;
}

void HandoffOutbound::steer(virt::OutgoingMigration &mig, const virt::MigrationStatus &s, const Logger &log) {
	double move;
	{
		std::lock_guard<std::mutex> l(st_->mu);
		move = rate_.move_bps();
	}
	auto steps = throttle_steps(double(s.dirty_pages_rate) * chunk::kChunkSize, s.cpu_throttle_pct, move);
	if (!steps || steps == st_->steps_set)
		return;
	mig.set_throttle_steps(steps->initial, steps->increment);
	log.debug("auto-converge steps " + std::to_string(steps->initial) + "/" + std::to_string(steps->increment) +
	          " % (dirty " + std::to_string(s.dirty_pages_rate) + " pages/s, throttle " +
	          std::to_string(s.cpu_throttle_pct) + " %, pipeline " + std::to_string(int(move / 1000)) + " kB/s)");
	st_->steps_set = steps;
}

// Classifies one chunk against the base and what was sent, adds its item.
void HandoffOutbound::add_item(ItemBatch &batch, uint8_t space, uint64_t chunk, const uint8_t *data,
                               uint64_t version) {
	uint64_t key = chunk::pack_ref(space, chunk);
	DedupDecision d = dd_.classify(space, chunk, data);
	bool was_sent;
	{
		std::lock_guard<std::mutex> l(st_->mu);
		was_sent = !st_->sent.insert(key).second;
		if (space != chunk::kMemorySpace)
			st_->disk_sent[key] = XXH3_64bits(data, chunk::kChunkSize);
	}
	chunk::ChunkRecord r = d.record(space, chunk);
	if (d.unchanged) {
		if (!was_sent)
			return; // the destination has it from the base already
		// It went out in another version: say explicitly that it is the base's again.
		r.kind = space == chunk::kMemorySpace ? chunk::ChunkKind::BaseMemory : chunk::ChunkKind::BaseDisk;
		r.ref = space == chunk::kMemorySpace ? chunk : chunk::pack_ref(static_cast<uint8_t>(space - 1u), chunk * chunk::kChunkSize);
	}
	batch.add(r, version, chunk::stores_payload(r.kind) ? d.payload : nullptr);
	std::lock_guard<std::mutex> l(st_->mu);
	(space == chunk::kMemorySpace ? st_->counts.memory_items : st_->counts.disk_items)++;
	st_->counts.stored_items += chunk::stores_payload(r.kind);
}

void HandoffOutbound::send_batch(ItemBatch &batch) {
	if (batch.empty())
		return;
	uint64_t raw = batch.raw_bytes();
	double link;
	{
		std::lock_guard<std::mutex> l(st_->mu);
		link = rate_.link_bps();
	}
	chooser_.set_link_rate(link);
	chooser_.observe(batch.payload().data(), batch.payload().size());
	CodecChoice c = chooser_.current();
	auto tc = Clock::now();
	std::vector<uint8_t> frame = batch.encode(c.codec, c.level);
	times_.compress += since(tc);
	net::FrameChannel *ch;
	uint64_t gen;
	const std::vector<uint8_t> *out = &frame;
	{
		std::unique_lock<std::mutex> l(st_->mu);
		// While a reconnect runs nothing new goes out; with resume, no more
		// than kMaxRetainedBytes wait for their ACK.
		st_->cv.wait(l, [&] {
			return st_->failed || (!st_->relinking && (!resume_ || st_->retained.empty() ||
			                                           st_->retained_bytes + frame.size() <= kMaxRetainedBytes));
		});
		if (st_->failed)
			fail(CLOUDLET_E_CANCELLED, "the handoff stopped");
		rate_.sent(frame.size() + net::kFrameOverhead, raw, Clock::now());
		st_->counts.raw_bytes += raw;
		ch = st_->ch;
		gen = st_->generation;
		if (resume_) {
			st_->retained_bytes += frame.size();
			st_->retained.push_back({rate_.frames_sent(), std::move(frame)});
			out = &st_->retained.back().payload; // stays put until acknowledged (after this send)
		}
		st_->cv.notify_all();
	}
	auto ts = Clock::now();
	try {
		ch->send(net::FrameType::Items, *out);
	} catch (const Error &e) {
		relink(gen, e); // the frame is retained: a resume sends it again if it did not arrive
	}
	times_.socket += since(ts);
}

void HandoffOutbound::sender_thread() {
	try {
		ItemBatch batch;
		// The disks' own chunks first: they are what changed on disk since the base.
		for (size_t di = 0; di < src_.disks; di++)
			src_.for_each_own_chunk(di, [&](uint64_t chunk, const uint8_t *data) {
				add_item(batch, static_cast<uint8_t>(di + 1), chunk, data, ++st_->version);
				if (batch.raw_bytes() >= kBatchRawBytes)
					send_batch(batch);
			});
		std::vector<uint8_t> data(chunk::kChunkSize);
		uint64_t key, version;
		for (;;) {
			auto tw = Clock::now();
			if (!queue_.take(&key, data.data(), &version))
				break;
			auto td = Clock::now();
			times_.wait += seconds_between(tw, td);
			chunk::RefParts at = chunk::unpack_ref(key);
			add_item(batch, at.selector, at.position, data.data(), version);
			times_.dedup += since(td);
			if (batch.raw_bytes() >= kBatchRawBytes || queue_.waiting() == 0)
				send_batch(batch);
		}
		send_batch(batch);
		std::lock_guard<std::mutex> l(st_->mu);
		if (st_->failed)
			return;
		st_->sender_done = true;
		st_->cv.notify_all();
	} catch (...) {
		fail_with(std::current_exception());
	}
}

void HandoffOutbound::ack_thread() {
	try {
		for (;;) {
			net::FrameChannel *ch;
			uint64_t gen;
			{
				std::unique_lock<std::mutex> l(st_->mu);
				st_->cv.wait(l, [&] {
					return st_->failed || (!st_->relinking && (st_->sender_done ||
					                                           rate_.frames_sent() > rate_.frames_acked()));
				});
				if (st_->failed || (st_->sender_done && rate_.frames_acked() == rate_.frames_sent()))
					return;
				ch = st_->ch;
				gen = st_->generation;
			}
			net::Frame f;
			try {
				f = ch->receive(timeout_ms_);
			} catch (const Error &e) {
				relink(gen, e); // a lost connection; not a peer that said stop (below)
				continue;
			}
			ch->fail_on_peer_stop(f);
			if (f.type != net::FrameType::Ack)
				fail(CLOUDLET_E_CORRUPT, ch->peer() + " sent " + net::frame_type_name(f.type) + " where ACK was expected");
			net::Ack ack = net::Ack::decode(f.payload, ch->peer());
			std::lock_guard<std::mutex> l(st_->mu);
			if (gen != st_->generation || st_->relinking)
				continue; // read as the link was being replaced: RESUMED counts it
			if (ack.frames != rate_.frames_acked() + 1)
				fail(CLOUDLET_E_CORRUPT, ch->peer() + " acknowledged " + std::to_string(ack.frames) +
				                             " ITEMS frames where " + std::to_string(rate_.frames_acked() + 1) +
				                             " were due");
			// What waits in the queue at the pause goes out during the
			// downtime: keep it to what the pipeline moves in half the target.
			if (rate_.acked(Clock::now()))
				queue_.set_budget(static_cast<uint64_t>(rate_.window_raw_bps() * downtime_target_s_ / 2));
			st_->drop_retained_through(ack.frames);
			st_->cv.notify_all();
		}
	} catch (...) {
		fail_with(std::current_exception());
	}
}

void HandoffOutbound::queue_changed_disk_chunks() {
	for (size_t di = 0; di < src_.disks; di++) {
		uint8_t space = static_cast<uint8_t>(di + 1);
		src_.for_each_own_chunk(di, [&](uint64_t chunk, const uint8_t *data) {
			uint64_t key = chunk::pack_ref(space, chunk);
			bool same;
			{
				std::lock_guard<std::mutex> l(st_->mu);
				auto it = st_->disk_sent.find(key);
				same = it != st_->disk_sent.end() && it->second == XXH3_64bits(data, chunk::kChunkSize);
			}
			if (!same)
				queue_.put(key, data, ++st_->version);
		});
	}
}

void HandoffOutbound::drain() {
	queue_.close();
	if (st_->sender.joinable())
		st_->sender.join();
	if (st_->acker.joinable())
		st_->acker.join();
	if (std::exception_ptr e = error())
		std::rethrow_exception(e);
}

} // namespace cloudlet::engine
