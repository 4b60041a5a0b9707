// base resume: a new, independent instance of a base. The base is verified
// and the CPU model checked before anything is created; the instance gets
// copy-on-write disks over the base's (never written), a fresh name and
// UUID, its own host-side paths, the base's memory (each page checked
// against the base's index as it is written), and fresh NICs.
#include "ops/base.h"
#include "store/undo_journal.h"
#include "ops/recovery.h"

#include "engine/chunk_index.h"
#include "host/process.h"
#include "image_file.h"
#include "ops/base_common.h"
#include "ops/base_verify.h"
#include "save_image.h"
#include "stream_writer.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/unique_fd.h"
#include "virt/base_xml.h"
#include "virt/domain.h"
#include "virt/host_caps.h"
#include "virt/nic_swap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include <cerrno>
#include <chrono>

namespace cloudlet::ops {

InstanceInfo base_resume(Context &ctx, const std::string &id, const ResumeOptions &o, Progress &progress) {
	auto t0 = Clock::now();
	recover_store(ctx); // what killed operations left (docs/reliability.md)
	store::BaseStore st(ctx.settings().store_dir);
	store::CatalogEntry e = st.find(id);
	BaseInfo base = verify_base(st, e, false, progress);
	if (base.status != "ok")
		fail(CLOUDLET_E_CORRUPT, "base " + e.id + " is corrupt, refusing to resume it: " + base.problem);
	const store::Manifest &m = base.manifest;

	InstanceInfo out;
	out.base_id = e.id;
	out.virt_type = o.virt_type.empty() ? m.virt_type : o.virt_type;
	auto conn = ctx.connection();
	// Portability: the memory state holds the base's CPU model; a host or
	// virt type that cannot provide it is refused before anything exists.
	virt::VirtTypeCaps caps = virt::query_virt_type(*conn, out.virt_type, m.cpu_model);
	if (caps.offered != CLOUDLET_YES)
		fail(CLOUDLET_E_HOST, "this host does not offer virt type '" + out.virt_type + "': " + caps.offered_detail);
	if (caps.cpu_model_usable != CLOUDLET_YES)
		fail(CLOUDLET_E_HOST, "CPU model " + m.cpu_model + " is not usable under " + out.virt_type +
		                          " on this host: " + caps.cpu_model_detail);

	std::string suffix = new_uuid().substr(0, 8);
	out.name = o.name.empty() ? e.name + "-" + suffix : o.name;
	if (!store::safe_file_name(out.name))
		fail(CLOUDLET_E_INVALID_ARG, "instance name '" + out.name + "' must be letters, digits, '.', '-', '_'");
	if (virt::find_domain(*conn, out.name))
		fail(CLOUDLET_E_EXISTS, "a domain named '" + out.name + "' already exists");
	out.uuid = domain_uuid(*conn, o.uuid);
	virt::check_nic_request(conn->get(), o.nic);
	out.dir = st.instances_dir() + "/" + out.name;
	if (mkdir(out.dir.c_str(), 0755) != 0)
		fail_errno("cannot create instance folder " + out.dir, errno);
	chmod(out.dir.c_str(), 0755);
	struct Cleanup {
		std::string dir;
		~Cleanup() { store::remove_tree(dir); }
	} cleanup{out.dir};
	// If this process dies before the instance is complete: no domain, no folder.
	store::UndoJournal journal(st.root(), "base-resume");
	journal.destroy_domain(out.uuid);
	journal.remove_path(out.dir);
	write_text_file(out.dir + "/base.id", e.id + "\n"); // base remove checks it

	virt::InstancePlan plan;
	plan.name = out.name;
	plan.uuid = out.uuid;
	plan.virt_type = out.virt_type;
	plan.base_dir = base.dir;
	plan.instance_dir = out.dir;
	for (const auto &p : m.parts) {
		if (p.role != "disk")
			continue;
		virt::InstanceDisk d{p.target, out.dir + "/disk-" + p.target + ".qcow2", base.dir + "/" + p.file};
		host::run_program({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", d.backing, d.overlay});
		plan.disks.push_back(d);
	}
	std::string xml = virt::instance_xml(read_text_file(base.dir + "/domain.xml", 16u << 20), plan);

	// The save image libvirt restores from, written from the base memory.
	auto tr = Clock::now();
	std::string image = out.dir + "/restore.img";
	{
		VerifiedPages pages(base.dir + "/memory.cltmem", base.dir + "/memory.idx");
		UniqueFd fd(open(image.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
		if (!fd)
			fail_errno("cannot create " + image, errno);
		qemu::FdSink sink(fd.get(), image);
		std::vector<uint8_t> head = qemu::encode_save_header(xml, "", true);
		sink.write(head.data(), head.size());
		qemu::write_stream(sink, pages, qemu::StreamWriter::kFreshRam);
		sink.flush();
	}
	progress.report("restore", 0, 0);
	try {
		virt::restore_domain(*conn, image, "cannot restore instance " + out.name + " of base " + e.id);
	} catch (...) {
		unlink(image.c_str());
		throw;
	}
	unlink(image.c_str());
	out.restore_seconds = since(tr);
	virt::DomainPtr dom = virt::require_domain(*conn, out.name, "instance " + out.name + " vanished after restore");

	try {
		// Fresh NICs: the restored device still has the base's MAC; unplug
		// it (the guest sees an ACPI eject) and plug a new one.
		auto tn = Clock::now();
		virt::NicSwap swap = virt::swap_nics(dom.get(), o.nic, progress);
		out.macs = swap.macs;
		out.old_macs = swap.old_macs;
		out.nic_seconds = since(tn);
	} catch (...) {
		virt::destroy_and_undefine(dom.get()); // transient: shut off is gone
		throw;
	}
	cleanup.dir.clear();
	out.seconds = since(t0);
	return out;
}

} // namespace cloudlet::ops
