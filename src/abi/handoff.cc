// The handoff calls: argument checks and translation to ops/handoff.h.
#include "abi/guard.h"
#include "abi/handles.h"
#include "abi/options.h"
#include "abi/reports.h"
#include "ops/handoff.h"
#include "ops/handoff_choices.h"

#include <cloudlet.h>

#include <memory>
#include <vector>

struct cloudlet_handoff_listener {
	std::unique_ptr<cloudlet::ops::HandoffListener> l;
};

namespace {

using cloudlet::abi::guard;
using cloudlet::abi::init_options;
using cloudlet::abi::read_options;
using cloudlet::abi::require;

using HandoffHolder = cloudlet::abi::VmReportHolder<cloudlet_handoff_info>; // only the new MACs are handed out

std::string str(const char *s) { return s ? s : ""; }

cloudlet::ops::HandoffOptions to_ops(const cloudlet_handoff_options *opts, cloudlet_handoff_options *o) {
	*o = read_options(opts);
	cloudlet::ops::HandoffOptions h;
	h.security = cloudlet::ops::handoff_security(o->security, str(o->token_file), str(o->tls_dir));
	h.reload_security = [security = o->security, token = str(o->token_file), dir = str(o->tls_dir)] {
		return cloudlet::ops::handoff_security(security, token, dir);
	};
	require(o->handshake_timeout_seconds <= 600, "handshake_timeout_seconds is out of range");
	if (o->handshake_timeout_seconds)
		h.handshake_s = static_cast<int>(o->handshake_timeout_seconds);
	require(o->timeout_seconds <= 3600, "timeout_seconds is out of range");
	if (o->timeout_seconds)
		h.timeout_s = static_cast<int>(o->timeout_seconds);
	h.codec = o->codec ? o->codec : "auto";
	require(h.codec == "auto" || h.codec == "zstd" || h.codec == "lzma" || h.codec == "none",
	        "codec must be auto, zstd, lzma or none");
	require(o->level >= -1 && o->level <= 22, "level is out of range");
	h.level = cloudlet::ops::handoff_level(h.codec, o->level);
	h.name = str(o->name);
	h.virt_type = str(o->virt_type);
	require(h.virt_type.empty() || h.virt_type == "qemu" || h.virt_type == "kvm",
	        "virt_type must be NULL, \"qemu\" or \"kvm\"");
	h.nic.mac = str(o->mac);
	h.nic.network = str(o->network);
	h.nic.nic_xml = str(o->nic_xml);
	h.uuid = str(o->uuid);
	require(o->resume_window_seconds <= 3600, "resume_window_seconds is out of range");
	h.resume_s = static_cast<int>(o->resume_window_seconds);
	return h;
}

HandoffHolder *to_c(const cloudlet::ops::HandoffInfo &r) {
	auto *h = new HandoffHolder();
	cloudlet_handoff_info &p = *h;
	p = cloudlet_handoff_info{};
	p.version = 2;
	p.domain = h->keep(r.domain);
	p.uuid = h->keep(r.uuid);
	p.peer = h->keep(r.peer);
	p.base_id = h->keep(r.base_id);
	p.dir = h->keep(r.dir);
	h->nics.fill(*h, p, r.macs, {});
	p.bytes_sent = r.bytes_sent;
	p.bytes_received = r.bytes_received;
	p.memory_items = r.memory_items;
	p.disk_items = r.disk_items;
	p.stored_items = r.stored_items;
	p.raw_bytes = r.raw_bytes;
	p.replaced = r.replaced;
	p.total_seconds = r.total_seconds;
	p.downtime_seconds = r.downtime_seconds;
	p.link_mbps = r.link_mbps;
	p.codec = h->keep(r.codec);
	p.drain_seconds = r.drain_seconds;
	p.restore_seconds = r.restore_seconds;
	p.resumes = static_cast<unsigned>(r.resumes);
	p.unacked_bytes = r.unacked_bytes;
	p.resent_bytes = r.resent_bytes;
	return h;
}

} // namespace

extern "C" {

CLOUDLET_API cloudlet_status cloudlet_handoff_options_init(cloudlet_handoff_options *opts, unsigned int version) {
	return guard(__func__, [&] {
		init_options(opts, version);
	});
}

CLOUDLET_API cloudlet_status cloudlet_handoff_send(cloudlet_handoff_info **out, cloudlet_ctx *ctx, const char *domain,
                                                   const char *destination, const cloudlet_handoff_options *opts) {
	return guard(__func__, [&] {
		if (out)
			*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		require(domain != nullptr && *domain, "domain is NULL or empty");
		require(destination != nullptr && *destination, "destination is NULL or empty");
		cloudlet_handoff_options o;
		cloudlet::ops::HandoffOptions h = to_ops(opts, &o);
		cloudlet::Progress progress(o.progress, o.progress_userdata, o.cancel);
		auto r = cloudlet::ops::handoff_send(ctx->ctx, domain, destination, h, progress);
		if (out)
			*out = to_c(r);
	});
}

CLOUDLET_API cloudlet_status cloudlet_handoff_listen(cloudlet_handoff_listener **out, cloudlet_ctx *ctx,
                                                     const char *address) {
	return guard(__func__, [&] {
		require(out != nullptr, "out is NULL");
		*out = nullptr;
		require(ctx != nullptr, "ctx is NULL");
		require(address != nullptr && *address, "address is NULL or empty");
		auto l = std::make_unique<cloudlet::ops::HandoffListener>(ctx->ctx, address);
		*out = new cloudlet_handoff_listener{std::move(l)};
	});
}

CLOUDLET_API cloudlet_status cloudlet_handoff_token_check(const char *token_file) {
	return guard(__func__, [&] {
		require(token_file != nullptr && *token_file, "token_file is NULL or empty");
		cloudlet::ops::read_handoff_token(token_file);
	});
}

CLOUDLET_API cloudlet_status cloudlet_handoff_receive_check(const cloudlet_handoff_options *opts) {
	return guard(__func__, [&] {
		cloudlet_handoff_options o;
		cloudlet::ops::HandoffOptions h = to_ops(opts, &o);
		cloudlet::ops::check_receive_credentials(h.security);
	});
}

CLOUDLET_API cloudlet_status cloudlet_handoff_listener_port(const cloudlet_handoff_listener *listener,
                                                            unsigned int *port) {
	return guard(__func__, [&] {
		require(listener != nullptr && port != nullptr, "listener or port is NULL");
		*port = listener->l->port();
	});
}

CLOUDLET_API cloudlet_status cloudlet_handoff_receive(cloudlet_handoff_info **out, cloudlet_handoff_listener *listener,
                                                      const cloudlet_handoff_options *opts) {
	return guard(__func__, [&] {
		if (out)
			*out = nullptr;
		require(listener != nullptr, "listener is NULL");
		cloudlet_handoff_options o;
		cloudlet::ops::HandoffOptions h = to_ops(opts, &o);
		cloudlet::Progress progress(o.progress, o.progress_userdata, o.cancel);
		auto r = listener->l->receive(h, progress);
		if (out)
			*out = to_c(r);
	});
}

CLOUDLET_API void cloudlet_handoff_listener_free(cloudlet_handoff_listener *listener) { delete listener; }

CLOUDLET_API void cloudlet_handoff_info_free(cloudlet_handoff_info *info) {
	delete static_cast<HandoffHolder *>(info);
}

} // extern "C"
