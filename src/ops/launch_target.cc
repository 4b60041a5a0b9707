#include "ops/launch_target.h"
#include "ops/recovery.h"

#include "host/store_space.h"
#include "ops/base_common.h"
#include "save_image.h"
#include "stream_writer.h"
#include "util/error.h"
#include "virt/base_xml.h"
#include "virt/domain.h"
#include "virt/host_caps.h"
#include "virt/nic_swap.h"
#include "virt/postcopy_incoming.h"
#include "virt/streamed_restore.h"

#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include <cerrno>

namespace cloudlet::ops {

LaunchCleanup::~LaunchCleanup() {
	if (keep_)
		return;
	if (!domain.empty() && conn) {
		if (virt::DomainPtr d = virt::find_domain(*conn, domain))
			virt::destroy_and_undefine(d.get());
	}
	if (!dir.empty())
		store::remove_tree(dir);
}

void prepare_launch(Context &ctx, const format::OverlayHeader &h, const LaunchRequest &req, Progress &progress,
                    LaunchTarget &t, LaunchCleanup &cleanup) {
	recover_store(ctx); // what killed operations left (docs/reliability.md)
	store::BaseStore st(ctx.settings().store_dir);
	// 1. The base: the one the header names, present and intact. A caller
	// who names a base learns first that the overlay is of another one
	// (whether or not this host holds that one: Nova must not reschedule a
	// wrong-base overlay to a host that does).
	if (!req.base.empty()) {
		store::CatalogEntry asked = st.find(req.base);
		if (asked.id != h.base_id)
			fail(CLOUDLET_E_INVALID_ARG, std::string("wrong base: ") + req.what + " was made from base " + h.base_id +
			                                 ", not " + asked.id + " (" + asked.name + ")");
	}
	store::CatalogEntry e;
	try {
		e = st.find(h.base_id);
	} catch (const Error &err) {
		if (err.status() != CLOUDLET_E_NOT_FOUND)
			throw;
		fail(CLOUDLET_E_NOT_FOUND,
		     std::string(req.what) + " needs base " + h.base_id + ", which this cloudlet does not have");
	}
	t.base = verify_base(st, e, false, progress);
	if (t.base.status != "ok")
		fail(CLOUDLET_E_CORRUPT, "base " + e.id + " is corrupt, refusing to launch from it: " + t.base.problem);
	const store::Manifest &m = t.base.manifest;
	t.base_id = e.id;

	// 2. This host can run it: the memory state holds the base's CPU model.
	t.virt_type = req.virt_type.empty() ? m.virt_type : req.virt_type;
	// The launch VM's NICs are restored on the network asked for (then
	// swapped for fresh ones on it), not on the base's.
	t.nic_backend = virt::nic_backend(req.nic);
	t.conn = ctx.connection();
	virt::VirtTypeCaps caps = virt::query_virt_type(*t.conn, t.virt_type, m.cpu_model);
	if (caps.offered != CLOUDLET_YES)
		fail(CLOUDLET_E_HOST, "this host does not offer virt type '" + t.virt_type + "': " + caps.offered_detail);
	if (caps.cpu_model_usable != CLOUDLET_YES)
		fail(CLOUDLET_E_HOST, "CPU model " + m.cpu_model + " is not usable under " + t.virt_type + " on this host: " +
		                          caps.cpu_model_detail);
	virt::check_nic_request(t.conn->get(), req.nic);
	if (req.postcopy) {
		std::string why;
		if (!virt::postcopy_possible(why))
			fail(CLOUDLET_E_HOST, "early start needs postcopy, which this host cannot do: " + why);
	}

	// 3. The launch VM's disks are exactly the base's.
	for (const auto &d : h.disks) {
		const store::Part *part = nullptr;
		for (const auto &p : m.parts)
			if (p.role == "disk" && p.target == d.name)
				part = &p;
		if (!part)
			fail(CLOUDLET_E_CORRUPT, std::string(req.what) + " has disk " + d.name + ", which base " + e.id + " does not");
		t.disk_parts.push_back(part);
	}
	for (const auto &p : m.parts)
		if (p.role == "disk") {
			bool named = false;
			for (const auto &d : h.disks)
				named |= d.name == p.target;
			if (!named)
				fail(CLOUDLET_E_CORRUPT, std::string(req.what) + " lacks base disk " + p.target);
		}

	// 4. A free name, and room for what will be written.
	t.name = req.name.empty() ? e.name + "-" + new_uuid().substr(0, 8) : req.name;
	if (!store::safe_file_name(t.name))
		fail(CLOUDLET_E_INVALID_ARG, "VM name '" + t.name + "' must be letters, digits, '.', '-', '_'");
	if (virt::find_domain(*t.conn, t.name))
		fail(CLOUDLET_E_EXISTS, "a domain named '" + t.name + "' already exists");
	std::string uuid = domain_uuid(*t.conn, req.uuid);
	host::DirSpace space = host::dir_space(st.instances_dir());
	if (space.free_bytes < req.space_needed)
		fail(CLOUDLET_E_IO, "too little disk space in " + space.examined + ": " + std::to_string(space.free_bytes >> 20) +
		                        " MiB free, " + req.what + " may need " + std::to_string(req.space_needed >> 20) + " MiB");

	// Nothing existed until here.
	t.uuid = uuid;
	t.dir = st.instances_dir() + "/" + t.name;
	if (mkdir(t.dir.c_str(), 0755) != 0)
		fail_errno(errno == EEXIST ? "an instance folder " + t.dir + " already exists"
		                           : "cannot create instance folder " + t.dir,
		           errno);
	cleanup.dir = t.dir;
	cleanup.journal = std::make_unique<store::UndoJournal>(st.root(), "launch");
	cleanup.journal->destroy_domain(t.uuid);
	cleanup.journal->remove_path(t.dir);
	cleanup.conn = t.conn;
	chmod(t.dir.c_str(), 0755);
	write_text_file(t.dir + "/base.id", e.id + "\n"); // base remove checks it

	t.base_memory = std::make_unique<VerifiedPages>(t.base.dir + "/memory.cltmem", t.base.dir + "/memory.idx");
	t.apply_base.memory = t.base_memory.get();
	for (size_t i = 0; i < t.disk_parts.size(); i++) {
		std::string raw = t.base.dir + "/" + t.disk_parts[i]->file;
		t.disk_maps.push_back(std::make_unique<MappedFile>(raw));
		t.apply_base.disks.push_back({t.disk_maps.back()->data(), t.disk_maps.back()->size(), raw});
		t.layer_paths.push_back(t.dir + "/disk-" + h.disks[i].name + ".qcow2");
		t.bounds.disk_bytes.push_back(t.disk_maps.back()->size());
	}
	t.bounds.memory_pages = t.base_memory->stream_info().total_pages;
	t.bounds.known = true;
	t.applier = std::make_unique<engine::OverlayApplier>(t.apply_base, h, t.layer_paths, t.dir, progress);
}

std::string launch_xml(const LaunchTarget &t, const format::OverlayHeader &h) {
	virt::InstancePlan plan;
	plan.name = t.name;
	plan.uuid = t.uuid;
	plan.virt_type = t.virt_type;
	plan.base_dir = t.base.dir;
	plan.instance_dir = t.dir;
	plan.nic_backend = t.nic_backend;
	for (size_t i = 0; i < t.disk_parts.size(); i++)
		plan.disks.push_back({h.disks[i].name, t.layer_paths[i], t.base.dir + "/" + t.disk_parts[i]->file});
	return virt::synthesis_xml(read_text_file(t.base.dir + "/domain.xml", 16u << 20), h.domain_xml, plan);
}

void restore_launch(LaunchTarget &t, const format::OverlayHeader &h, bool paused, LaunchCleanup &cleanup,
                    Progress &progress) {
	t.applier->finish();
	std::string xml = launch_xml(t, h);
	progress.report("restore", 0, 0);
	cleanup.domain = t.name;
	virt::restore_streamed(
	    t.conn->get(), t.dir + "/restore.fifo",
	    [&](qemu::ByteSink &s) {
		    std::vector<uint8_t> head = qemu::encode_save_header(xml, "", !paused);
		    s.write(head.data(), head.size());
		    qemu::write_stream(s, *t.applier, qemu::StreamWriter::kFreshRam);
	    },
	    paused, progress);
}

EarlyStart::EarlyStart(LaunchTarget &t, const format::OverlayHeader &h, LaunchCleanup &cleanup,
                       const std::vector<uint8_t> &named, std::function<void(virt::DomainRef)> running,
                       std::function<void()> stop_reader, Progress &progress)
    : arrivals_(t.applier->stream_info().total_pages, named), running_(std::move(running)),
      stop_reader_(std::move(stop_reader)) {
	t.applier->finish(); // the disk layers: QEMU reads them from the first instruction
	std::string xml = launch_xml(t, h);
	progress.report("restore", 0, 0);
	cleanup.domain = t.name;
	in_ = std::make_unique<virt::IncomingPostcopy>(t.conn->get(), xml);
	const qemu::PageProvider &img = *t.applier;
	thread_ = std::thread([this, &img, &progress] {
		try {
			stats_ = engine::serve_postcopy(
			    in_->fd(), img,
			    [&] {
				    virt::resume(in_->domain(), "cannot start the VM");
				    running_(in_->domain());
			    },
			    [&] { in_->abandon(); }, progress, &arrivals_);
		} catch (...) {
			error_ = std::current_exception();
			failed_ = true;
			if (stop_reader_)
				stop_reader_();
		}
	});
}

EarlyStart::~EarlyStart() {
	if (thread_.joinable())
		abandon();
}

void EarlyStart::abandon() {
	arrivals_.abandon();
	try {
		in_->abandon(); // QEMU may wait for pages that will never come
	} catch (...) {
	}
	if (thread_.joinable())
		thread_.join();
}

engine::PostcopyStats EarlyStart::finish() {
	try {
		arrivals_.complete();
	} catch (...) {
		abandon();
		throw;
	}
	thread_.join();
	if (error_)
		std::rethrow_exception(error_);
	return stats_;
}

engine::PostcopyStats restore_launch_postcopy(LaunchTarget &t, const format::OverlayHeader &h, LaunchCleanup &cleanup,
                                              const std::function<void(virt::DomainRef)> &running, Progress &progress) {
	EarlyStart start(t, h, cleanup, {}, running, {}, progress); // every page is here
	return start.finish();
}

} // namespace cloudlet::ops
