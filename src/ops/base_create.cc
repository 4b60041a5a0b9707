// base create: pause the domain, capture its memory into our memory image,
// copy its disks while it is paused (so disks and memory are one instant),
// index and digest everything in one pass per part, and move the result
// into the store.
#include "ops/base.h"
#include "store/undo_journal.h"
#include "ops/recovery.h"

#include "chunk/content_digest.h"
#include "chunk/sha256.h"
#include "engine/chunk_index.h"
#include "host/process.h"
#include "host/tempdir.h"
#include "image_file.h"
#include "ops/base_common.h"
#include "util/clock.h"
#include "util/error.h"
#include "virt/base_xml.h"
#include "virt/domain.h"
#include "virt/migration_capture.h"

#include <cerrno>
#include <chrono>
#include <map>

namespace cloudlet::ops {

BaseInfo base_create(Context &ctx, const std::string &domain, const BaseCreateOptions &o, Progress &progress) {
	auto t0 = Clock::now();
	recover_store(ctx); // what killed operations left (docs/reliability.md)
	store::BaseStore st(ctx.settings().store_dir);
	auto conn = ctx.connection();
	virt::DomainPtr dom = virt::lookup_domain(*conn, domain);
	std::string dom_name = virt::domain_name(dom.get());
	virt::RunState state = virt::run_state(dom.get());
	if (!state.running() && !state.paused())
		fail(CLOUDLET_E_INVALID_ARG, "domain " + dom_name + " is " + state.name() +
		                                 "; a base is made from a running or paused domain");
	bool was_running = state.running();
	// Refuse before touching the VM if it cannot be a base.
	virt::BaseSource src = virt::inspect_base_source(virt::save_xml(dom.get()), ctx.settings().cpu_model);
	std::string name = o.name.empty() ? dom_name : o.name;
	for (const auto &e : st.list())
		if (e.name == name)
			fail(CLOUDLET_E_EXISTS, "a base named '" + name + "' is already in the store (" + e.id + ")");

	std::string work = st.make_work_dir("create-");
	store::UndoJournal journal(st.root(), "base-create"); // the VM runs again if we die
	struct Cleanup {
		std::string dir;
		~Cleanup() { store::remove_tree(dir); }
	} cleanup{work};
	store::CatalogEntry entry;
	store::Manifest m;
	m.virt_type = src.virt_type;
	m.machine = src.machine;
	m.cpu_model = src.cpu_model;
	m.memory_bytes = src.memory_bytes;
	unsigned threads = ctx.settings().worker_threads ? ctx.settings().worker_threads : 2;

	try {
		// 1. Memory, straight into the base's memory image (the work folder
		// goes if we fail or die), the VM left paused for the disk copies.
		auto tc = Clock::now();
		if (was_running)
			journal.resume_domain(virt::domain_uuid(dom.get()));
		{
			qemu::ImageFileWriter memory(work + "/memory.cltmem");
			virt::MigrationCapture cap =
			    virt::capture_migration(dom.get(), was_running, memory, {}, progress, ctx.log());
			memory.finish(cap.stream);
		}
		entry.capture_seconds = since(tc);

		// 2. Disks and boot files, copied while the VM is paused: one instant.
		auto td = Clock::now();
		size_t i = 0;
		for (const auto &d : src.disks) {
			progress.report("disks", i++, src.disks.size());
			// -U: QEMU holds its image lock; the VM is paused and its
			// images flushed and inactive after the migration.
			host::run_program({"qemu-img", "convert", "-U", "-f", d.format, "-O", "raw", d.source, work + "/" + d.file});
		}
		if (!src.kernel.empty())
			host::copy_file(src.kernel, work + "/kernel");
		if (!src.initrd.empty())
			host::copy_file(src.initrd, work + "/initrd");
		entry.disk_seconds = since(td);
	} catch (...) {
		virt::restore_run_state(dom.get(), was_running, ctx.log());
		throw;
	}
	// The base's data is complete: give the source domain back.
	virt::release(dom.get(), was_running, o.stop, "the base is captured");

	// 3. Indexes and digests: one pass over each part, each pass on every
	// thread (chunk/content_digest.h).
	auto th = Clock::now();
	{
		FILE *f = fopen((work + "/domain.xml").c_str(), "wb");
		if (!f || fwrite(src.canonical_xml.data(), 1, src.canonical_xml.size(), f) != src.canonical_xml.size() ||
		    fclose(f) != 0)
			fail_errno("cannot write " + work + "/domain.xml", errno);
	}
	m.parts.push_back({"domain.xml", "domain-xml", "", 0, ""});
	m.parts.push_back({"memory.cltmem", "memory", "", 0, ""});
	m.parts.push_back({"memory.idx", "memory-index", "", 0, ""});
	for (const auto &d : src.disks) {
		m.parts.push_back({d.file, "disk", d.target, 0, ""});
		m.parts.push_back({"disk-" + d.target + ".idx", "disk-index", d.target, 0, ""});
		m.parts.push_back({"disk-" + d.target + ".idx512", "disk-sector-index", d.target, 0, ""});
	}
	if (!src.kernel.empty())
		m.parts.push_back({"kernel", "kernel", "", 0, ""});
	if (!src.initrd.empty())
		m.parts.push_back({"initrd", "initrd", "", 0, ""});
	uint64_t total = 0, done = 0;
	for (const auto &p : m.parts)
		if (p.role == "memory" || p.role == "disk")
			total += store::stamp_of(work + "/" + p.file).size;
	// The indexes first (each from the pass that digests its source), then
	// the digests of everything not digested yet.
	std::map<std::string, std::string> digests;
	progress.report("index", 0, total);
	for (const auto &p : m.parts) {
		std::string path = work + "/" + p.file;
		chunk::ScanOptions scan = chunk::scan_step(threads, progress, "index", done, total);
		if (p.role == "memory") {
			digests[p.file] = engine::index_memory_image(path, work + "/memory.idx", scan);
		} else if (p.role == "disk") {
			digests[p.file] = engine::index_disk_file(path, work + "/disk-" + p.target + ".idx",
			                                          work + "/disk-" + p.target + ".idx512", scan);
		} else {
			continue;
		}
		done += store::stamp_of(path).size;
	}
	for (size_t k = 0; k < m.parts.size(); k++) {
		store::Part &p = m.parts[k];
		progress.report("hash", k, m.parts.size());
		std::string path = work + "/" + p.file;
		p.size = store::stamp_of(path).size;
		auto it = digests.find(p.file);
		p.digest = it != digests.end() ? it->second : chunk::digest_file(path, threads);
	}
	std::string manifest = m.to_json();
	write_text_file(work + "/manifest.json", manifest);
	entry.id = chunk::sha256_hex(manifest.data(), manifest.size());
	entry.hash_seconds = since(th);

	entry.name = name;
	entry.created = now_iso8601();
	entry.source_domain = dom_name;
	entry.bytes = m.total_bytes();
	for (const auto &p : m.parts)
		entry.stamps[p.file] = store::stamp_of(work + "/" + p.file);
	entry.total_seconds = since(t0);
	make_readable(work, m);
	st.add(entry, work);
	cleanup.dir.clear();
	return stored_base_info(st, entry, m);
}

} // namespace cloudlet::ops
