// handoff send: the source side (docs/handoff.md).
//
//   connect + token handshake ─ OFFER (launch header) ─ ACCEPT
//   QEMU live-migrates into our socket ─ each page version into the dirty queue
//   sender thread: disks' own chunks, then the queue ─ dedup ─ ITEMS batches
//   ack thread: counts ACKs (link throughput)
//   QEMU pauses the VM for its last pass ─ disks re-read: changed chunks queued
//   queue drained ─ FINAL (device state) ─ READY ─ GO ─ RUNNING ─ source destroyed
//
// Until READY any failure resumes the source VM unchanged; after GO the
// rules of docs/protocols/handoff.md "Failure" apply.
#include "ops/handoff.h"
#include "store/undo_journal.h"
#include "ops/recovery.h"

#include "chunk/chunk_ref.h"
#include "engine/codec_chooser.h"
#include "engine/dedup.h"
#include "engine/convergence.h"
#include "engine/dirty_queue.h"
#include "engine/handoff_items.h"
#include "format/overlay_file.h"
#include "net/handoff_wire.h"
#include "ops/base_common.h"
#include "ops/launch_source.h"
#include "virt/migration_capture.h"
#include "util/clock.h"
#include "util/error.h"
#include "virt/domain.h"

#include <json-c/json.h>
#include <libvirt/virterror.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace cloudlet::ops {

namespace {

int connect_to(const std::string &dest) {
	size_t colon = dest.rfind(':');
	if (colon == std::string::npos || colon == 0 || colon + 1 == dest.size())
		fail(CLOUDLET_E_INVALID_ARG, "destination '" + dest + "' is not HOST:PORT");
	std::string host = dest.substr(0, colon), port = dest.substr(colon + 1);
	if (host.size() > 2 && host.front() == '[' && host.back() == ']')
		host = host.substr(1, host.size() - 2);
	addrinfo hints{};
	hints.ai_socktype = SOCK_STREAM;
	addrinfo *res = nullptr;
	if (int e = getaddrinfo(host.c_str(), port.c_str(), &hints, &res))
		fail(CLOUDLET_E_IO, "cannot resolve " + dest + ": " + gai_strerror(e));
	std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> own(res, freeaddrinfo);
	int err = 0;
	for (addrinfo *a = res; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			return fd;
		}
		err = errno;
		close(fd);
	}
	fail(CLOUDLET_E_IO, "cannot connect to " + dest + ": " + errno_message("connect", err));
}

// Everything the sending threads share.
struct Pipeline {
	net::FrameChannel *ch = nullptr;
	engine::DirtyQueue *queue = nullptr;
	engine::Deduper *dd = nullptr;
	LaunchSource *src = nullptr;
	engine::CodecChooser *chooser = nullptr;
	std::atomic<uint64_t> version{0};

	std::mutex mu;
	std::condition_variable cv;
	uint64_t items_frames = 0, acks = 0;
	bool sender_done = false, failed = false;
	std::exception_ptr error;
	std::unordered_set<uint64_t> sent;              // chunks sent at least once
	std::unordered_map<uint64_t, uint64_t> disk_sent; // disk chunk -> XXH3 of the content sent
	uint64_t memory_items = 0, disk_items = 0, stored = 0, raw = 0;
	Clock::time_point first_send{}, last_ack{};
	// The link's rate from ACKs: bytes of ITEMS frames acknowledged per
	// second over the last window, while items were waiting to go.
	std::vector<uint64_t> frame_bytes, frame_raw; // bytes of each ITEMS frame sent, and before compression
	uint64_t window_raw = 0;
	// Item bytes before compression the pipeline delivers per second
	// (smoothed): what QEMU's dirty rate is weighed against for throttling.
	double move_bps = 0;
	// Where the sender thread's time went (debug log at the end): waiting
	// for the queue, dedup, compression, the socket.
	double t_wait = 0, t_dedup = 0, t_compress = 0, t_socket = 0;
	double downtime_target_s = 0.5;
	double link_bps = 0;
	Clock::time_point window_start{};
	uint64_t window_bytes = 0;

	void fail_with(std::exception_ptr e) {
		std::lock_guard<std::mutex> l(mu);
		if (!error)
			error = e;
		failed = true;
		cv.notify_all();
		queue->abort();
	}
};

// Classifies one chunk against the base and what was sent, adds its item.
void add_item(Pipeline &p, engine::ItemBatch &batch, uint8_t space, uint64_t chunk, const uint8_t *data,
              uint64_t version) {
	uint64_t key = chunk::pack_ref(space, chunk);
	engine::DedupDecision d = p.dd->classify(space, chunk, data);
	bool was_sent;
	{
		std::lock_guard<std::mutex> l(p.mu);
		was_sent = !p.sent.insert(key).second;
		if (space != chunk::kMemorySpace)
			p.disk_sent[key] = XXH3_64bits(data, chunk::kChunkSize);
	}
	chunk::ChunkRecord r = d.record(space, chunk);
	if (d.unchanged) {
		if (!was_sent)
			return; // the destination has it from the base already
		// It went out in another version: say explicitly that it is the base's again.
		r.kind = space == chunk::kMemorySpace ? chunk::ChunkKind::BaseMemory : chunk::ChunkKind::BaseDisk;
		r.ref = space == chunk::kMemorySpace
		            ? chunk
		            : chunk::pack_ref(static_cast<uint8_t>(space - 1u), chunk * chunk::kChunkSize);
	}
	batch.add(r, version, chunk::stores_payload(r.kind) ? d.payload : nullptr);
	std::lock_guard<std::mutex> l(p.mu);
	(space == chunk::kMemorySpace ? p.memory_items : p.disk_items)++;
	p.stored += chunk::stores_payload(r.kind);
}

void send_batch(Pipeline &p, engine::ItemBatch &batch) {
	if (batch.empty())
		return;
	uint64_t raw = batch.raw_bytes();
	double link;
	{
		std::lock_guard<std::mutex> l(p.mu);
		link = p.link_bps;
	}
	p.chooser->set_link_rate(link);
	p.chooser->observe(batch.payload().data(), batch.payload().size());
	engine::CodecChoice c = p.chooser->current();
	auto tc = Clock::now();
	std::vector<uint8_t> frame = batch.encode(c.codec, c.level);
	p.t_compress += since(tc);
	{
		std::lock_guard<std::mutex> l(p.mu);
		if (p.items_frames == 0)
			p.first_send = p.window_start = Clock::now();
		p.items_frames++;
		p.frame_bytes.push_back(frame.size() + 32);
		p.frame_raw.push_back(raw);
		p.raw += raw;
		p.cv.notify_all();
	}
	auto ts = Clock::now();
	p.ch->send(net::FrameType::Items, frame.data(), frame.size());
	p.t_socket += since(ts);
}

void sender_thread(Pipeline &p) {
	try {
		engine::ItemBatch batch;
		// The disks' own chunks first: they are what changed on disk since the base.
		for (size_t di = 0; di < p.src->disks.size(); di++)
			for_each_own_chunk(p.src->disks[di], [&](uint64_t chunk, const uint8_t *data) {
				add_item(p, batch, static_cast<uint8_t>(di + 1), chunk, data, ++p.version);
				if (batch.raw_bytes() >= (1u << 20))
					send_batch(p, batch);
			});
		std::vector<uint8_t> data(chunk::kChunkSize);
		uint64_t key, version;
		for (;;) {
			auto tw = Clock::now();
			if (!p.queue->take(&key, data.data(), &version))
				break;
			auto td = Clock::now();
			p.t_wait += std::chrono::duration<double>(td - tw).count();
			chunk::RefParts at = chunk::unpack_ref(key);
			add_item(p, batch, at.selector, at.position, data.data(), version);
			p.t_dedup += since(td);
			if (batch.raw_bytes() >= (1u << 20) || p.queue->waiting() == 0)
				send_batch(p, batch);
		}
		send_batch(p, batch);
		std::lock_guard<std::mutex> l(p.mu);
		if (p.failed)
			return;
		p.sender_done = true;
		p.cv.notify_all();
	} catch (...) {
		p.fail_with(std::current_exception());
	}
}

void ack_thread(Pipeline &p, int timeout_ms) {
	try {
		for (;;) {
			{
				std::unique_lock<std::mutex> l(p.mu);
				p.cv.wait(l, [&] { return p.failed || p.sender_done || p.items_frames > p.acks; });
				if (p.failed || (p.sender_done && p.acks == p.items_frames))
					return;
			}
			net::Frame f = p.ch->expect(net::FrameType::Ack, timeout_ms);
			if (f.payload.size() != 16)
				fail(CLOUDLET_E_CORRUPT, "malformed ACK from " + p.ch->peer());
			std::lock_guard<std::mutex> l(p.mu);
			p.last_ack = Clock::now();
			p.window_bytes += p.frame_bytes.at(p.acks);
			p.window_raw += p.frame_raw.at(p.acks);
			p.acks++;
			// Only while more is in flight does the ACK pace measure the link.
			double w = std::chrono::duration<double>(p.last_ack - p.window_start).count();
			if (p.items_frames > p.acks && w >= 0.5) {
				double rate = double(p.window_bytes) / w;
				p.link_bps = p.link_bps > 0 ? 0.5 * p.link_bps + 0.5 * rate : rate;
				// What waits in the queue at the pause goes out during the
				// downtime: keep it to what the pipeline moves in half the target.
				double raw_rate = double(p.window_raw) / w;
				p.queue->set_budget(static_cast<uint64_t>(raw_rate * p.downtime_target_s / 2));
				p.move_bps = p.move_bps > 0 ? 0.5 * p.move_bps + 0.5 * raw_rate : raw_rate;
				p.window_start = p.last_ack;
				p.window_bytes = p.window_raw = 0;
			} else if (p.items_frames == p.acks) {
				p.window_start = p.last_ack; // idle: the next window starts fresh
				p.window_bytes = p.window_raw = 0;
			}
			p.cv.notify_all();
		}
	} catch (...) {
		p.fail_with(std::current_exception());
	}
}

// The capture's sink: the launch header goes out as the OFFER when QEMU's
// RAM block table arrives; then every page version into the queue.
class QueueSink : public qemu::StreamSink {
public:
	QueueSink(Pipeline &p, format::OverlayHeader &h, const std::string &name, int timeout_ms,
	          std::function<void()> start)
	    : p_(p), h_(h), name_(name), timeout_ms_(timeout_ms), start_(std::move(start)), zero_(chunk::kChunkSize, 0) {}
	void on_ram_blocks(const qemu::StreamInfo &info) override {
		h_.total_pages = info.total_pages;
		h_.ram_blocks.clear();
		for (const auto &b : info.blocks)
			h_.ram_blocks.push_back({b.name, b.pages() * chunk::kChunkSize});
		h_.stream_version = info.version;
		h_.ram_section_id = info.ram_section_id;
		h_.ram_instance_id = info.ram_instance_id;
		h_.ram_version = info.ram_version;
		h_.config_section = info.config_section;
		const auto &bb = p_.src->base_memory->stream_info().blocks;
		bool same = bb.size() == info.blocks.size();
		for (size_t i = 0; same && i < bb.size(); i++)
			same = bb[i].name == info.blocks[i].name && bb[i].length == info.blocks[i].length;
		p_.src->dedup.same_memory_layout = same;
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(name_.c_str()));
		json_object_object_add(o, "header", json_object_new_string(format::header_json(h_).c_str()));
		std::string offer = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		json_object_put(o);
		try {
			p_.ch->send(net::FrameType::Offer, offer);
			p_.ch->expect(net::FrameType::Accept, timeout_ms_);
		} catch (...) {
			// The capture reports a failing sink in its own words; keep
			// the destination's (a refusal says why).
			p_.fail_with(std::current_exception());
			throw;
		}
		start_();
	}
	void on_page(uint32_t, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t) override {
		if (!data) {
			if (fill) {
				std::vector<uint8_t> f(chunk::kChunkSize, fill);
				p_.queue->put(chunk::pack_ref(chunk::kMemorySpace, linear), f.data(), ++p_.version);
				return;
			}
			data = zero_.data();
		}
		p_.queue->put(chunk::pack_ref(chunk::kMemorySpace, linear), data, ++p_.version);
	}

private:
	Pipeline &p_;
	format::OverlayHeader &h_;
	std::string name_;
	int timeout_ms_;
	std::function<void()> start_;
	std::vector<uint8_t> zero_;
};

std::string final_payload(const Pipeline &p, const std::vector<uint8_t> &device_state) {
	json_object *o = json_object_new_object();
	json_object_object_add(o, "memory_items", json_object_new_uint64(p.memory_items));
	json_object_object_add(o, "disk_items", json_object_new_uint64(p.disk_items));
	json_object_object_add(o, "stored_items", json_object_new_uint64(p.stored));
	std::string j = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	json_object_put(o);
	std::string s(4, '\0');
	uint32_t n = static_cast<uint32_t>(j.size());
	for (int i = 0; i < 4; i++)
		s[i] = static_cast<char>(n >> (8 * i));
	s += j;
	s.append(reinterpret_cast<const char *>(device_state.data()), device_state.size());
	return s;
}

} // namespace

HandoffInfo handoff_send(Context &ctx, const std::string &domain, const std::string &destination,
                         const HandoffOptions &o, Progress &progress) {
	auto t0 = Clock::now();
	int timeout_ms = o.timeout_s * 1000;
	HandoffInfo info;
	info.peer = destination;
	auto conn = ctx.connection();
	virt::DomainPtr dom = virt::lookup_domain(*conn, domain);
	info.domain = virDomainGetName(dom.get());
	if (virt::domain_state(dom.get()) != VIR_DOMAIN_RUNNING)
		fail(CLOUDLET_E_INVALID_ARG, "domain " + info.domain + " is " + virt::state_name(virt::domain_state(dom.get())) +
		                                 "; handoff moves a running VM");
	LaunchSource src;
	describe_launch(ctx, dom.get(), progress, src);
	info.base_id = src.base.entry.id;

	// Authenticated before anything about the VM is sent.
	int fd = connect_to(destination);
	struct CloseFd {
		int fd;
		~CloseFd() { close(fd); }
	} close_fd{fd};
	net::FrameChannel ch(fd, destination, o.token);
	progress.report("handshake", 0, 0);
	ch.client_handshake(timeout_ms);

	recover_store(ctx); // what killed operations left (docs/reliability.md)
	store::BaseStore st(ctx.settings().store_dir);
	// If this process dies, the source VM runs again (docs/reliability.md).
	store::UndoJournal journal(st.root(), "handoff-send");
	engine::Deduper dd(src.dedup, st.root() + "/tmp");
	dd.use_ordinal_self_refs();
	engine::DirtyQueue queue(st.root() + "/tmp", o.queue_bytes);
	Pipeline p;
	p.ch = &ch;
	p.queue = &queue;
	p.dd = &dd;
	p.src = &src;
	bool adaptive = o.codec == "auto";
	engine::CodecChooser chooser(adaptive, adaptive ? engine::CodecChoice{chunk::Codec::Zstd, 3}
	                                                : engine::CodecChoice{chunk::codec_from_name(o.codec), o.level});
	p.chooser = &chooser;
	p.downtime_target_s = o.downtime_ms / 1000.0;
	format::OverlayHeader header;
	header.base_id = info.base_id;
	for (const auto &d : src.disks)
		header.disks.push_back({d.target, d.bytes});
	header.domain_xml = src.xml;
	header.codec = o.codec;
	header.level = o.level;
	header.created = now_iso8601();
	header.creator = "libcloudlet handoff";

	std::thread sender, acker;
	auto stop_threads = [&] {
		queue.abort();
		{
			std::lock_guard<std::mutex> l(p.mu);
			p.failed = true;
			p.cv.notify_all();
		}
		shutdown(fd, SHUT_RDWR); // unblocks a thread inside send/recv
		if (sender.joinable())
			sender.join();
		if (acker.joinable())
			acker.join();
	};
	QueueSink sink(p, header, info.domain, timeout_ms, [&] {
		sender = std::thread(sender_thread, std::ref(p));
		acker = std::thread(ack_thread, std::ref(p), timeout_ms);
	});

	// 1. Live: QEMU's passes into the queue while the VM runs.
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
		std::optional<engine::ThrottleSteps> steps_set;
		co.on_status = [&](virt::OutgoingMigration &mig, const virt::MigrationStatus &st) {
			double move;
			{
				std::lock_guard<std::mutex> l(p.mu);
				move = p.move_bps;
			}
			auto steps =
			    engine::throttle_steps(double(st.dirty_pages_rate) * chunk::kChunkSize, st.cpu_throttle_pct, move);
			if (steps && steps != steps_set) {
				mig.set_throttle_steps(steps->initial, steps->increment);
				ctx.log().debug("auto-converge steps " + std::to_string(steps->initial) + "/" +
				                std::to_string(steps->increment) + " % (dirty " +
				                std::to_string(st.dirty_pages_rate) + " pages/s, throttle " +
				                std::to_string(st.cpu_throttle_pct) + " %, pipeline " +
				                std::to_string(int(move / 1000)) + " kB/s)");
				steps_set = steps;
			}
		};
		progress.report("live", 0, 0);
		journal.resume_domain(virt::domain_uuid(dom.get())); // QEMU pauses it for its last pass
		cap = virt::capture_migration(dom.get(), true, sink, co, progress, ctx.log());
	} catch (...) {
		std::exception_ptr own;
		{
			std::lock_guard<std::mutex> l(p.mu);
			own = p.error;
		}
		stop_threads(); // the capture already put the VM back as it was
		if (own)
			std::rethrow_exception(own); // the link's story is the better one
		throw;
	}
	auto paused_at = Clock::now();

	// 2. Paused: what changed on disk since it was read, the rest of the
	// queue, the device state; the destination restores.
	try {
		for (size_t di = 0; di < src.disks.size(); di++) {
			uint8_t space = static_cast<uint8_t>(di + 1);
			for_each_own_chunk(src.disks[di], [&](uint64_t chunk, const uint8_t *data) {
				uint64_t key = chunk::pack_ref(space, chunk);
				bool same;
				{
					std::lock_guard<std::mutex> l(p.mu);
					auto it = p.disk_sent.find(key);
					same = it != p.disk_sent.end() && it->second == XXH3_64bits(data, chunk::kChunkSize);
				}
				if (!same)
					queue.put(key, data, ++p.version);
			});
		}
		queue.close();
		sender.join();
		acker.join();
		{
			std::lock_guard<std::mutex> l(p.mu);
			if (p.error)
				std::rethrow_exception(p.error);
		}
		progress.report("final", 0, 0);
		ch.send(net::FrameType::Final, final_payload(p, cap.stream.device_state));
		info.drain_seconds = cap.paused_seconds + since(paused_at); // from QEMU's pause
		auto tf = Clock::now();
		ch.expect(net::FrameType::Ready, std::max(timeout_ms, 120000));
		info.restore_seconds = since(tf);
		ch.send(net::FrameType::Go, nullptr, 0);
	} catch (...) {
		stop_threads();
		virt::restore_run_state(dom.get(), true, ctx.log());
		throw;
	}
	double nic_seconds = 0;
	try {
		net::Frame f = ch.expect(net::FrameType::Running, timeout_ms);
		json_object *j = json_tokener_parse(f.text().c_str()), *v = nullptr;
		if (j && json_object_object_get_ex(j, "uuid", &v))
			info.uuid = json_object_get_string(v);
		if (j && json_object_object_get_ex(j, "nic_seconds", &v))
			nic_seconds = json_object_get_double(v);
		if (j && json_object_object_get_ex(j, "nic_error", &v))
			ctx.log().warn(std::string("the VM runs at the destination, but its NIC swap did not complete there: ") +
			               json_object_get_string(v));
		if (j && json_object_object_get_ex(j, "macs", &v) && json_object_is_type(v, json_type_array))
			for (size_t i = 0; i < json_object_array_length(v); i++)
				info.macs.push_back(json_object_get_string(json_object_array_get_idx(v, i)));
		if (j)
			json_object_put(j);
	} catch (const Error &e) {
		// After GO: two copies rather than none (docs/protocols/handoff.md).
		virt::restore_run_state(dom.get(), true, ctx.log());
		fail(CLOUDLET_E_IO, std::string("the destination was told to run the VM but did not confirm (") + e.what() +
		                        "); the source VM runs again — the destination may be running it too");
	}
	// Paused here until the destination resumed it: RUNNING comes after the
	// NIC swap, which happens with the VM already running there.
	// From QEMU's pause: its final pass and the capture's check came first.
	info.downtime_seconds = std::max(0.0, cap.paused_seconds + since(paused_at) - nic_seconds);
	auto running_at = Clock::now();

	// The destination runs it: the source's copy goes, with its files.
	std::string inst_dir = src.disks[0].file.substr(0, src.disks[0].file.find_last_of('/'));
	if (virDomainDestroy(dom.get()) != 0)
		ctx.log().warn("handoff done but the source domain could not be destroyed: " +
		               std::string(virGetLastErrorMessage()));
	if (virDomainIsPersistent(dom.get()) == 1)
		virDomainUndefine(dom.get());
	if (inst_dir.rfind(st.instances_dir() + "/", 0) == 0)
		store::remove_tree(inst_dir);
	auto cleaned_at = Clock::now();

	info.bytes_sent = ch.bytes_sent();
	info.bytes_received = ch.bytes_received();
	info.memory_items = p.memory_items;
	info.disk_items = p.disk_items;
	info.stored_items = p.stored;
	info.raw_bytes = p.raw;
	info.replaced = queue.replaced();
	info.codec = chooser.current().name();
	info.codec_switches = chooser.switches();
	double link_s = std::chrono::duration<double>(p.last_ack - p.first_send).count();
	info.link_mbps = link_s > 0 ? double(info.bytes_sent) * 8 / link_s / 1e6 : 0;
	info.total_seconds = since(t0);
	auto f2 = [](double v) {
		char b[32];
		snprintf(b, sizeof b, "%.2f", v);
		return std::string(b);
	};
	ctx.log().debug("handoff timeline: total " + f2(info.total_seconds) + " s, first item after " +
	                f2(std::chrono::duration<double>(p.first_send - t0).count()) + " s, items " + f2(link_s) +
	                " s, NIC swap at the destination " + f2(nic_seconds) + " s, running there after " +
	                f2(std::chrono::duration<double>(running_at - t0).count()) + " s, source cleanup " +
	                f2(std::chrono::duration<double>(cleaned_at - running_at).count()) + " s; paused: QEMU's final pass " +
	                f2(cap.downtime_ms / 1000) + " s, then " + f2(cap.paused_seconds - cap.downtime_ms / 1000) +
	                " s to the capture's end (its RAM check " + f2(cap.check_seconds) + " s, " +
	                std::to_string(cap.corrected_pages) + " pages corrected); sender thread: waiting " +
	                f2(p.t_wait) + " s, dedup " + f2(p.t_dedup) + " s, compression " + f2(p.t_compress) +
	                " s, socket " + f2(p.t_socket) + " s; codec " + info.codec);
	return info;
}

} // namespace cloudlet::ops
