// base list / show / remove, and the verification every use of a base
// goes through: the manifest must hash to the ID and every part must match
// the manifest (re-hashed whenever its stamp changed, or always if asked).
#include "ops/base.h"
#include "ops/recovery.h"
#include "ops/base_verify.h"

#include "chunk/content_digest.h"
#include "chunk/sha256.h"
#include "ops/base_common.h"
#include "util/error.h"
#include "virt/domain.h"

#include <dirent.h>

#include <algorithm>
#include <thread>

namespace cloudlet::ops {

BaseInfo verify_base(store::BaseStore &st, const store::CatalogEntry &e, bool full, Progress &progress,
                     unsigned threads) {
	BaseInfo info;
	info.entry = e;
	info.dir = st.base_dir(e.id);
	auto corrupt = [&](const std::string &why) {
		info.status = "corrupt";
		info.problem = why;
		add_allocation(info);
		return info;
	};
	std::string text;
	try {
		text = read_text_file(info.dir + "/manifest.json", 1u << 20);
	} catch (const Error &err) {
		return corrupt(std::string("manifest.json unreadable: ") + err.what());
	}
	std::string h = chunk::sha256_hex(text.data(), text.size());
	if (h != e.id)
		return corrupt("manifest.json hashes to " + h + ", not to the base ID");
	try {
		info.manifest = store::Manifest::parse(text, info.dir + "/manifest.json");
	} catch (const Error &err) {
		return corrupt(err.what());
	}
	if (threads == 0)
		threads = std::max(1u, std::thread::hardware_concurrency());
	std::map<std::string, store::Stamp> stamps;
	bool rehashed = false;
	uint64_t done = 0, total = info.manifest.total_bytes();
	for (const auto &p : info.manifest.parts) {
		std::string path = info.dir + "/" + p.file;
		store::Stamp s;
		try {
			s = store::stamp_of(path);
		} catch (const Error &err) {
			return corrupt(p.file + " is missing: " + err.what());
		}
		if (s.size != p.size)
			return corrupt(p.file + " is " + std::to_string(s.size) + " bytes, the manifest says " +
			               std::to_string(p.size));
		auto it = e.stamps.find(p.file);
		if (full || it == e.stamps.end() || !(it->second == s)) {
			progress.report("verify", done, total);
			std::string got = chunk::scan_file(path, chunk::scan_step(threads, progress, "verify", done, total)).digest;
			if (got != p.digest)
				return corrupt(p.file + " changed: its digest is " + got + ", the manifest says " + p.digest);
			rehashed = true;
		}
		done += p.size;
		stamps[p.file] = s;
	}
	if (rehashed)
		st.update_stamps(e.id, stamps);
	info.status = "ok";
	add_allocation(info);
	return info;
}

std::vector<BaseInfo> base_list(Context &ctx) {
	recover_store(ctx); // what killed operations left (docs/reliability.md)
	store::BaseStore st(ctx.settings().store_dir);
	std::vector<BaseInfo> out;
	for (const auto &e : st.list()) {
		BaseInfo i;
		i.entry = e;
		i.dir = st.base_dir(e.id);
		try {
			i.manifest = store::Manifest::parse(read_text_file(i.dir + "/manifest.json", 1u << 20), i.dir);
		} catch (const Error &err) {
			i.status = "corrupt";
			i.problem = err.what();
		}
		add_allocation(i);
		out.push_back(i);
	}
	return out;
}

BaseInfo base_show(Context &ctx, const std::string &id, bool full, Progress &progress) {
	store::BaseStore st(ctx.settings().store_dir);
	return verify_base(st, st.find(id), full, progress, ctx.settings().worker_threads);
}

void base_remove(Context &ctx, const std::string &key) {
	recover_store(ctx); // what killed operations left (docs/reliability.md)
	store::BaseStore st(ctx.settings().store_dir);
	std::string id = st.find(key).id;
	// A running instance reads the base's disk and boot files.
	if (DIR *d = opendir(st.instances_dir().c_str())) {
		std::vector<std::string> users;
		while (struct dirent *ent = readdir(d)) {
			std::string name = ent->d_name;
			if (name == "." || name == "..")
				continue;
			std::string marker;
			try {
				marker = read_text_file(st.instances_dir() + "/" + name + "/base.id", 256);
			} catch (const Error &) {
				continue;
			}
			if (marker.rfind(id, 0) == 0)
				users.push_back(name);
		}
		closedir(d);
		if (!users.empty()) {
			auto conn = ctx.connection();
			for (const auto &u : users) {
				virt::DomainPtr dom = virt::find_domain(*conn, u);
				if (dom && virt::is_active(dom.get()))
					fail(CLOUDLET_E_BUSY, "instance " + u + " of base " + id + " is running; stop it first");
			}
		}
	}
	st.remove(id);
}

VerifiedPages::VerifiedPages(const std::string &image, const std::string &index) : img_(image), idx_(index) {
	if (idx_.count() != img_.stream_info().total_pages)
		fail(CLOUDLET_E_CORRUPT, index + " covers " + std::to_string(idx_.count()) + " pages, the memory image " +
		                             std::to_string(img_.stream_info().total_pages));
}

const uint8_t *VerifiedPages::page(uint64_t p) const {
	if (++served_ % 16384 == 0)
		img_.drop_resident();
	const uint8_t *d = img_.page(p);
	engine::Hash128 h = d ? engine::chunk_hash(d) : engine::zero_chunk_hash();
	if (h != idx_.at(p))
		fail(CLOUDLET_E_CORRUPT, "page " + std::to_string(p) + " of the base memory image does not match its index");
	return d;
}

} // namespace cloudlet::ops
