// handoff receive: the destination side (docs/handoff.md). Items are applied
// as they arrive (the newest version of each chunk wins) and fed on to a
// QEMU that libvirt starts at once; on FINAL the VM completes its restore
// paused, READY, and is resumed only on GO. Until RUNNING has been sent, any
// failure removes everything this handoff created here.
#include "ops/handoff.h"

#include "engine/handoff_items.h"
#include "net/handoff_wire.h"
#include "ops/launch_target.h"
#include "save_image.h"
#include "stream_writer.h"
#include "util/clock.h"
#include "util/error.h"
#include "virt/domain.h"
#include "virt/streamed_restore.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace cloudlet::ops {

namespace {

std::string json_string(json_object *o, const char *k) {
	json_object *v = nullptr;
	if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		fail(CLOUDLET_E_CORRUPT, std::string("handoff message lacks the string '") + k + "'");
	return json_object_get_string(v);
}

std::string peer_name(const sockaddr_storage &a) {
	char host[NI_MAXHOST], port[NI_MAXSERV];
	if (getnameinfo(reinterpret_cast<const sockaddr *>(&a), sizeof a, host, sizeof host, port, sizeof port,
	                NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return "the source";
	return std::string(host) + ":" + port;
}

} // namespace

HandoffListener::HandoffListener(Context &ctx, const std::string &address) : ctx_(ctx) {
	size_t colon = address.rfind(':');
	if (colon == std::string::npos || colon + 1 == address.size())
		fail(CLOUDLET_E_INVALID_ARG, "listen address '" + address + "' is not ADDR:PORT");
	std::string host = address.substr(0, colon), port = address.substr(colon + 1);
	if (host.size() > 2 && host.front() == '[' && host.back() == ']')
		host = host.substr(1, host.size() - 2);
	addrinfo hints{};
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	addrinfo *res = nullptr;
	if (int e = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res))
		fail(CLOUDLET_E_INVALID_ARG, "cannot resolve " + address + ": " + gai_strerror(e));
	std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> own(res, freeaddrinfo);
	fd_ = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd_ < 0)
		fail_errno("cannot create a socket", errno);
	int one = 1;
	setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd_, res->ai_addr, res->ai_addrlen) != 0 || listen(fd_, 4) != 0) {
		int e = errno;
		close(fd_);
		fail_errno("cannot listen on " + address, e);
	}
	sockaddr_storage a{};
	socklen_t len = sizeof a;
	getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len);
	port_ = ntohs(a.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6 *>(&a)->sin6_port
	                                      : reinterpret_cast<sockaddr_in *>(&a)->sin_port);
}

HandoffListener::~HandoffListener() {
	if (fd_ >= 0)
		close(fd_);
}

HandoffInfo HandoffListener::receive(const HandoffOptions &o, Progress &progress) {
	int timeout_ms = o.timeout_s * 1000;
	// Wait for a source, checking for cancellation.
	int cfd = -1;
	sockaddr_storage peer{};
	while (cfd < 0) {
		pollfd pfd{fd_, POLLIN, 0};
		int r = poll(&pfd, 1, 200);
		progress.check();
		if (r <= 0)
			continue;
		socklen_t len = sizeof peer;
		cfd = accept4(fd_, reinterpret_cast<sockaddr *>(&peer), &len, SOCK_CLOEXEC);
		if (cfd < 0 && errno != EINTR && errno != ECONNABORTED)
			fail_errno("accept failed", errno);
	}
	struct CloseFd {
		int fd;
		~CloseFd() { close(fd); }
	} close_fd{cfd};
	int one = 1;
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	auto t0 = Clock::now();
	HandoffInfo info;
	info.peer = peer_name(peer);
	net::FrameChannel ch(cfd, info.peer, o.token);
	ch.server_handshake(timeout_ms); // a wrong token ends here: nothing was sent or created

	LaunchCleanup cleanup;
	LaunchTarget t;
	format::OverlayHeader h;
	try {
		net::Frame offer = ch.expect(net::FrameType::Offer, timeout_ms);
		json_object *j = json_tokener_parse(offer.text().c_str());
		std::unique_ptr<json_object, decltype(&json_object_put)> own(j, json_object_put);
		std::string source_name = json_string(j, "name");
		h = format::parse_header(json_string(j, "header"), "handoff OFFER from " + info.peer);
		LaunchRequest req;
		req.name = o.name.empty() ? source_name : o.name;
		req.virt_type = o.virt_type;
		req.uuid = o.uuid;
		req.nic = o.nic;
		req.what = "the handoff";
		req.space_needed = (64ull << 20) + h.total_pages * chunk::kChunkSize;
		try {
			prepare_launch(ctx_, h, req, progress, t, cleanup);
		} catch (const Error &e) {
			ch.send(net::FrameType::Refuse, net::abort_payload(e.status(), e.what()));
			throw;
		}
		t.applier->set_versioned();
		ch.send(net::FrameType::Accept, "{}");
		info.domain = t.name;
		info.uuid = t.uuid;
		info.dir = t.dir;
		info.base_id = t.base_id;

		// QEMU starts now, while items still come: libvirt restores from a
		// FIFO that gets the RAM block table and a first pass over every page
		// (the base's where nothing was sent yet), then a pass per batch over
		// the pages it changed, and at FINAL the device state. The disk layers
		// stay empty and valid until FINAL rewrites them in place; QEMU holds
		// them open inactive during an incoming migration and re-reads them
		// when it completes (docs/handoff.md).
		std::string xml = launch_xml(t, h);
		cleanup.domain = t.name;
		uint8_t spaces = static_cast<uint8_t>(h.disks.size());
		uint64_t frames = 0, raw = 0;
		net::Frame f;
		progress.report("items", 0, 0);
		double finish_s = 0;
		Clock::time_point device_state_at = Clock::now();
		virt::restore_streamed(
		    t.conn->get(), t.dir + "/restore.fifo",
		    [&](qemu::ByteSink &sink) {
			    std::vector<uint8_t> head = qemu::encode_save_header(xml, "", false);
			    sink.write(head.data(), head.size());
			    qemu::StreamWriter w(sink, t.applier->stream_info());
			    w.begin();
			    w.all_pages(*t.applier, qemu::StreamWriter::kFreshRam);
			    std::vector<uint64_t> changed;
			    for (;;) {
				    f = ch.receive(timeout_ms);
				    if (f.type == net::FrameType::Final)
					    break;
				    ch.fail_on_peer_stop(f);
				    if (f.type != net::FrameType::Items)
					    fail(CLOUDLET_E_CORRUPT,
					         info.peer + " sent " + net::frame_type_name(f.type) + " during the items");
				    changed.clear();
				    raw += engine::decode_item_batch(
				        f.payload, spaces, [&](const chunk::ChunkRecord &r, uint64_t v, const uint8_t *data) {
					        if (t.applier->apply_versioned(r, data, v) && r.space == chunk::kMemorySpace)
						        changed.push_back(r.chunk);
					        (r.space == chunk::kMemorySpace ? info.memory_items : info.disk_items)++;
				        });
				    frames++;
				    uint8_t ack[16];
				    for (int i = 0; i < 8; i++) {
					    ack[i] = static_cast<uint8_t>(frames >> (8 * i));
					    ack[8 + i] = static_cast<uint8_t>(raw >> (8 * i));
				    }
				    ch.send(net::FrameType::Ack, ack, sizeof ack);
				    std::sort(changed.begin(), changed.end());
				    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
				    w.pages(*t.applier, changed);
			    }
			    // FINAL: u32 JSON length, the JSON, the device state.
			    if (f.payload.size() < 4)
				    fail(CLOUDLET_E_CORRUPT, "malformed FINAL from " + info.peer);
			    uint32_t jl = f.payload[0] | f.payload[1] << 8 | f.payload[2] << 16 | uint32_t(f.payload[3]) << 24;
			    if (jl > f.payload.size() - 4)
				    fail(CLOUDLET_E_CORRUPT, "malformed FINAL from " + info.peer);
			    std::vector<uint8_t> ds(f.payload.begin() + 4 + jl, f.payload.end());
			    t.applier->on_device_state(ds);
			    auto tf = Clock::now();
			    t.applier->finish(); // the disk layers, before QEMU re-reads them
			    finish_s = since(tf);
			    device_state_at = Clock::now();
			    w.end(ds);
		    },
		    true, progress);
		ctx_.log().debug("handoff FINAL: disk layers written in " + std::to_string(finish_s) +
		                 " s; device state to restore done " + std::to_string(since(device_state_at)) + " s");
		info.raw_bytes = raw;
		info.stored_items = t.applier->stored_chunks();

		json_object *r = json_object_new_object();
		json_object_object_add(r, "name", json_object_new_string(t.name.c_str()));
		json_object_object_add(r, "uuid", json_object_new_string(t.uuid.c_str()));
		ch.send(net::FrameType::Ready, json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
		json_object_put(r);
		ch.expect(net::FrameType::Go, timeout_ms);

		virt::DomainPtr dom(virDomainLookupByName(t.conn->get(), t.name.c_str()));
		if (!dom || virDomainResume(dom.get()) != 0)
			virt::fail_libvirt("cannot resume the handed-off VM " + t.name);
		auto tn = Clock::now();
		// From here the VM running here is the VM: it may already have done
		// work the source's paused copy never saw. A NIC swap that fails (a
		// guest that does not act on the unplug in time) therefore does not
		// undo the handoff: the VM stays, with the NICs it has, and both
		// sides say so. docs/handoff.md "Safety".
		virt::NicSwap swap;
		std::string nic_error;
		try {
			swap = virt::swap_nics(dom.get(), o.nic, progress);
		} catch (const Error &e) {
			nic_error = e.what();
			swap.macs = virt::domain_macs(dom.get());
			ctx_.log().warn("the handed-off VM " + t.name + " runs here, but its NIC swap did not complete: " +
			                nic_error);
		}
		double nic_seconds = since(tn);
		info.macs = swap.macs;
		json_object *run = json_object_new_object();
		json_object_object_add(run, "name", json_object_new_string(t.name.c_str()));
		json_object_object_add(run, "uuid", json_object_new_string(t.uuid.c_str()));
		json_object *macs = json_object_new_array();
		for (const auto &m : swap.macs)
			json_object_array_add(macs, json_object_new_string(m.c_str()));
		json_object_object_add(run, "macs", macs);
		json_object_object_add(run, "nic_seconds", json_object_new_double(nic_seconds));
		if (!nic_error.empty())
			json_object_object_add(run, "nic_error", json_object_new_string(nic_error.c_str()));
		ch.send(net::FrameType::Running, json_object_to_json_string_ext(run, JSON_C_TO_STRING_PLAIN));
		json_object_put(run);
		cleanup.keep();
	} catch (const Error &e) {
		try {
			if (e.status() != CLOUDLET_E_IO && e.status() != CLOUDLET_E_TIMEOUT)
				ch.send(net::FrameType::Abort, net::abort_payload(e.status(), e.what()));
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
