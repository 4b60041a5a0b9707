// cloudlet handoff send|receive
#include "cli.h"

#include <cerrno>
#include <cstdio>

namespace cli {

const char *handoff_help =
    "usage: cloudlet handoff send DOMAIN HOST:PORT CREDENTIALS [--codec auto|zstd|lzma|none] [--level N]\n"
    "                             [--timeout SECONDS] [--handshake-timeout SECONDS] [--resume-window SECONDS]\n"
    "       cloudlet handoff receive --listen ADDR:PORT CREDENTIALS [--once] [--name NAME] [--uuid UUID]\n"
    "                             [--virt-type qemu|kvm] [--mac MAC | --network NAME] [--timeout SECONDS]\n"
    "                             [--handshake-timeout SECONDS] [--resume-window SECONDS]\n"
    "CREDENTIALS: --token-file FILE            TLS 1.3, authenticated by the token (the default)\n"
    "             --tls-dir DIR                TLS 1.3, X.509: DIR holds ca-cert.pem and server-cert.pem +\n"
    "                                          server-key.pem (receive) or client-cert.pem + client-key.pem\n"
    "                                          (send), as for QEMU's migration TLS\n"
    "             --token-file FILE --insecure-plaintext\n"
    "                                          no encryption: anyone on the path reads the VM's memory\n"
    "\n"
    "send: moves the running VM DOMAIN (an instance of a base in the store) to the\n"
    "cloudlet listening at HOST:PORT, which holds the same base and token. Memory\n"
    "moves live; only what the destination lacks is sent. On success DOMAIN is\n"
    "gone here; on any failure it runs on unchanged.\n"
    "receive: serves handoffs (one with --once: the first source that authenticates)\n"
    "and prints each VM received; the VM is named NAME (default: the source's name)\n"
    "and gets fresh NICs. Connections that do not authenticate within the handshake\n"
    "timeout (default 10 s) are dropped and logged. With --json it prints one JSON\n"
    "document per line: the listening port first, then each handoff.\n"
    "A connection that drops while the VM still runs at the source is replaced and\n"
    "the transfer goes on where it was, within --resume-window (default 30 s; 0:\n"
    "the handoff fails at once and the source runs on).\n"
    "Both take --json. docs/handoff.md, docs/protocols/handoff.md, docs/security.md.\n";

namespace {

// `sent`: the sender's report. Downtime, link rate and their parts are
// measured by the sender only: a receiver's JSON gives them as null, not 0
// (which would read as "no downtime").
json_object *info_json(const cloudlet_handoff_info *i, bool sent) {
	json_object *o = json_object_new_object();
	json_object_object_add(o, "domain", json_object_new_string(i->domain));
	json_object_object_add(o, "uuid", json_object_new_string(i->uuid));
	json_object_object_add(o, "peer", json_object_new_string(i->peer));
	json_object_object_add(o, "base_id", json_object_new_string(i->base_id));
	if (*i->dir)
		json_object_object_add(o, "dir", json_object_new_string(i->dir));
	json_object *m = json_object_new_array();
	for (size_t k = 0; k < i->nic_count; k++)
		json_object_array_add(m, json_object_new_string(i->macs[k]));
	json_object_object_add(o, "macs", m);
	json_object_object_add(o, "bytes_sent", json_object_new_uint64(i->bytes_sent));
	json_object_object_add(o, "bytes_received", json_object_new_uint64(i->bytes_received));
	json_object_object_add(o, "memory_items", json_object_new_uint64(i->memory_items));
	json_object_object_add(o, "disk_items", json_object_new_uint64(i->disk_items));
	json_object_object_add(o, "stored_items", json_object_new_uint64(i->stored_items));
	json_object_object_add(o, "raw_bytes", json_object_new_uint64(i->raw_bytes));
	json_object_object_add(o, "replaced", json_object_new_uint64(i->replaced));
	json_object_object_add(o, "total_seconds", json_object_new_double(i->total_seconds));
	auto sender_only = [&](const char *key, double v) {
		json_object_object_add(o, key, sent ? json_object_new_double(v) : nullptr);
	};
	sender_only("downtime_seconds", i->downtime_seconds);
	sender_only("link_mbps", i->link_mbps);
	sender_only("drain_seconds", i->drain_seconds);
	sender_only("restore_seconds", i->restore_seconds);
	if (*i->codec)
		json_object_object_add(o, "codec", json_object_new_string(i->codec));
	json_object_object_add(o, "resumes", json_object_new_uint64(i->resumes));
	json_object_object_add(o, "unacked_bytes", sent ? json_object_new_uint64(i->unacked_bytes) : nullptr);
	json_object_object_add(o, "resent_bytes", sent ? json_object_new_uint64(i->resent_bytes) : nullptr);
	return o;
}

void print_send(const cloudlet_handoff_info *i) {
	printf("handed %s off to %s in %.2f s (downtime %.2f s: last items %.2f s, restore there %.2f s)\n", i->domain,
	       i->peer, i->total_seconds, i->downtime_seconds, i->drain_seconds, i->restore_seconds);
	printf("  sent     %s (%llu memory + %llu disk items, %llu stored, %s before compression, %s); link %.1f Mbit/s\n",
	       human_bytes(i->bytes_sent).c_str(), static_cast<unsigned long long>(i->memory_items),
	       static_cast<unsigned long long>(i->disk_items), static_cast<unsigned long long>(i->stored_items),
	       human_bytes(i->raw_bytes).c_str(), i->codec, i->link_mbps);
	if (i->resumes)
		printf("  resumed  %u times after the link dropped (%s sent again of %s unacknowledged)\n", i->resumes,
		       human_bytes(i->resent_bytes).c_str(), human_bytes(i->unacked_bytes).c_str());
	for (size_t k = 0; k < i->nic_count; k++)
		printf("  NIC      %s at the destination\n", i->macs[k]);
}

void print_receive(const cloudlet_handoff_info *i) {
	printf("received %s (%s) from %s in %.2f s; files in %s\n", i->domain, i->uuid, i->peer, i->total_seconds, i->dir);
	printf("  received %s (%llu memory + %llu disk items)\n", human_bytes(i->bytes_received).c_str(),
	       static_cast<unsigned long long>(i->memory_items), static_cast<unsigned long long>(i->disk_items));
	if (i->resumes)
		printf("  resumed  %u times after the link dropped\n", i->resumes);
	for (size_t k = 0; k < i->nic_count; k++)
		printf("  NIC      %s\n", i->macs[k]);
	fflush(stdout);
}

} // namespace

namespace {

// One JSON Lines record of a serving receiver: {KIND: DOC}.
json_object *record(const char *kind, json_object *doc) {
	json_object *o = json_object_new_object();
	json_object_object_add(o, kind, doc);
	return o;
}

void print_line(json_object *doc) {
	puts(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(stdout);
	json_object_put(doc);
}

} // namespace

int cmd_handoff(const Global &g, Args args) {
	std::string token, codec, level, timeout, listen, name, virt, mac, network, tls_dir, handshake;
	bool has_tls = args.value("--tls-dir", &tls_dir), plaintext = args.flag("--insecure-plaintext");
	bool has_handshake = args.value("--handshake-timeout", &handshake);
	std::string resume_window;
	bool has_resume = args.value("--resume-window", &resume_window);
	bool has_token = args.value("--token-file", &token), has_codec = args.value("--codec", &codec);
	bool has_level = args.value("--level", &level), has_timeout = args.value("--timeout", &timeout);
	bool has_listen = args.value("--listen", &listen), has_name = args.value("--name", &name);
	bool has_virt = args.value("--virt-type", &virt), has_mac = args.value("--mac", &mac);
	bool has_net = args.value("--network", &network), once = args.flag("--once");
	std::string uuid;
	bool has_uuid = args.value("--uuid", &uuid);
	std::vector<std::string> pos = args.positional("handoff");
	if (pos.empty() || (pos[0] != "send" && pos[0] != "receive"))
		throw Failure{"handoff needs 'send' or 'receive' (see cloudlet handoff --help)", 2};
	bool send = pos[0] == "send";
	if (!has_token && !has_tls)
		throw Failure{"handoff " + pos[0] + " needs --token-file FILE or --tls-dir DIR", 2};
	if (has_token && has_tls)
		throw Failure{"--token-file and --tls-dir exclude each other (TLS with the token's PSK, or with X.509)", 2};
	if (plaintext && !has_token)
		throw Failure{"--insecure-plaintext needs --token-file (frames are still authenticated by the token)", 2};
	exclusive("--mac", has_mac, "--network", has_net);
	if (send && (pos.size() != 3 || has_listen || has_name || has_virt || has_mac || has_net || has_uuid || once))
		throw Failure{"usage: cloudlet handoff send DOMAIN HOST:PORT CREDENTIALS (see cloudlet handoff --help)", 2};
	if (!send && (pos.size() != 1 || !has_listen || has_codec || has_level))
		throw Failure{"usage: cloudlet handoff receive --listen ADDR:PORT CREDENTIALS (see cloudlet handoff --help)", 2};
	cloudlet_handoff_options o = CLOUDLET_HANDOFF_OPTIONS_INIT;
	if (has_token)
		o.token_file = token.c_str();
	if (has_tls) {
		o.security = CLOUDLET_HANDOFF_TLS_X509;
		o.tls_dir = tls_dir.c_str();
	}
	if (plaintext) {
		o.security = CLOUDLET_HANDOFF_PLAINTEXT_UNSAFE;
		if (!g.quiet)
			fprintf(stderr, "cloudlet: warning: --insecure-plaintext: the VM's memory and disks cross the network "
			                "unencrypted\n");
	}
	if (has_handshake)
		o.handshake_timeout_seconds = static_cast<unsigned>(parse_number("--handshake-timeout", handshake, 1, 600));
	if (has_resume)
		o.resume_window_seconds = static_cast<unsigned>(parse_number("--resume-window", resume_window, 0, 3600));
	if (has_codec)
		o.codec = codec.c_str();
	if (has_level && (!has_codec || (codec != "zstd" && codec != "lzma")))
		throw Failure{"--level needs --codec zstd or --codec lzma (auto chooses its own levels)", 2};
	if (has_level) // xz presets stop at 9, zstd levels at 22
		o.level = static_cast<int>(parse_number("--level", level, 0, codec == "lzma" ? 9 : 22));
	if (has_timeout)
		o.timeout_seconds = static_cast<unsigned>(parse_number("--timeout", timeout, 1, 3600));
	if (has_name)
		o.name = name.c_str();
	if (has_virt)
		o.virt_type = virt.c_str();
	if (has_uuid)
		o.uuid = uuid.c_str();
	if (has_mac)
		o.mac = mac.c_str();
	if (has_net)
		o.network = network.c_str();
	cloudlet_ctx *ctx = open_context(g);
	ProgressSink progress = make_progress(g);
	o.progress = ProgressSink::callback;
	o.progress_userdata = &progress;
	o.cancel = interrupt_cancel();
	cloudlet_handoff_info *info = nullptr;
	if (send) {
		cloudlet_status st = cloudlet_handoff_send(&info, ctx, pos[1].c_str(), pos[2].c_str(), &o);
		progress.finish();
		cloudlet_ctx_free(ctx);
		check(st, "handoff failed");
		if (g.json)
			print_json(info_json(info, true));
		else if (!g.quiet)
			print_send(info);
		cloudlet_handoff_info_free(info);
		return 0;
	}
	// Credentials every handoff would refuse (a token file, certificates)
	// are refused now, with one line, not after "listening".
	if (cloudlet_handoff_receive_check(&o) != CLOUDLET_OK) {
		std::string why = cloudlet_last_error_message();
		cloudlet_status why_st = cloudlet_last_error_status();
		cloudlet_ctx_free(ctx);
		throw Failure{"handoff receive: " + why, 1, why_st};
	}
	cloudlet_handoff_listener *l = nullptr;
	cloudlet_status st = cloudlet_handoff_listen(&l, ctx, listen.c_str());
	if (st != CLOUDLET_OK)
		cloudlet_ctx_free(ctx);
	check(st, "cannot listen");
	unsigned port = 0;
	cloudlet_handoff_listener_port(l, &port);
	if (g.json) {
		json_object *d = json_object_new_object();
		json_object_object_add(d, "address", json_object_new_string(listen.c_str()));
		json_object_object_add(d, "port", json_object_new_int64(port));
		print_line(record("listening", d));
	} else if (!g.quiet) {
		printf("listening for handoffs on port %u\n", port);
		fflush(stdout);
	}
	int rc = 0;
	// The last record: the error document every command ends with on
	// failure (docs/cli.md), on one line like the records before it.
	auto stop = [&](int code, cloudlet_status status) {
		rc = code;
		Failure f{std::string("handoff receive: ") + cloudlet_last_error_message(), code, status};
		report(Global{}, f); // the stderr line
		if (g.json)
			print_line(error_document(f));
	};
	do {
		// Credentials may have been rotated into something unusable: that is
		// this host's problem, not a peer's, and retrying cannot mend it.
		if (cloudlet_handoff_receive_check(&o) != CLOUDLET_OK) {
			stop(1, cloudlet_last_error_status());
			break;
		}
		// Returns for an authenticated handoff only (or cancel): a stranger,
		// a wrong token or a port scan is logged and does not count for --once.
		st = cloudlet_handoff_receive(&info, l, &o);
		progress.finish();
		// Interrupted (SIGINT/SIGTERM) exits 130 as every command does (docs/cli.md).
		bool interrupted = st == CLOUDLET_E_CANCELLED || cloudlet_cancel_is_triggered(o.cancel);
		if (st == CLOUDLET_OK) {
			if (g.json)
				print_line(record("received", info_json(info, false)));
			else if (!g.quiet)
				print_receive(info);
			cloudlet_handoff_info_free(info);
		} else if (interrupted || once) {
			stop(interrupted ? 130 : 1, interrupted ? CLOUDLET_E_CANCELLED : st);
			break;
		} else {
			if (g.json)
				print_line(record("failed", error_document({cloudlet_last_error_message(), 1, st})));
			fprintf(stderr, "cloudlet: handoff refused or failed, nothing kept: %s\n", cloudlet_last_error_message());
		}
	} while (!once);
	cloudlet_handoff_listener_free(l);
	cloudlet_ctx_free(ctx);
	return rc;
}

} // namespace cli
