// base export / import: one-file packages (format/base_package.*).
#include "ops/base.h"
#include "store/undo_journal.h"
#include "ops/recovery.h"

#include "format/base_package.h"
#include "ops/base_common.h"
#include "ops/base_verify.h"
#include "util/error.h"
#include "util/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace cloudlet::ops {

void base_export(Context &ctx, const std::string &id, const std::string &path, Progress &progress) {
	recover_store(ctx); // what killed operations left (docs/reliability.md)
	store::BaseStore st(ctx.settings().store_dir);
	store::CatalogEntry e = st.find(id);
	BaseInfo b = verify_base(st, e, false, progress);
	if (b.status != "ok")
		fail(CLOUDLET_E_CORRUPT, "base " + e.id + " is corrupt, refusing to export it: " + b.problem);
	std::string part = path + ".part";
	store::UndoJournal journal(st.root(), "base-export");
	journal.remove_path(part);
	UniqueFd fd(open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	if (!fd)
		fail_errno("cannot create " + part, errno);
	try {
		format::PackageHeader h{e.id, e.name, read_text_file(b.dir + "/manifest.json", 1u << 20)};
		format::write_base_package(fd.get(), part, h, b.manifest, b.dir, progress);
		if (fsync(fd.get()) != 0)
			fail_errno("cannot sync " + part, errno);
		fd.reset();
		if (rename(part.c_str(), path.c_str()) != 0)
			fail_errno("cannot rename " + part + " to " + path, errno);
	} catch (...) {
		fd.reset();
		unlink(part.c_str());
		throw;
	}
}

BaseInfo base_import(Context &ctx, const std::string &path, const std::string &name, Progress &progress) {
	recover_store(ctx); // what killed operations left (docs/reliability.md)
	store::BaseStore st(ctx.settings().store_dir);
	UniqueFd fd = open_for_reading(path);
	std::string work = st.make_work_dir("import-");
	struct Cleanup {
		std::string dir;
		~Cleanup() { store::remove_tree(dir); }
	} cleanup{work};
	qemu::FdSource src(fd.get(), path);
	qemu::Reader r(src, path);
	format::PackageHeader h = format::read_base_package(r, work, progress);
	write_text_file(work + "/manifest.json", h.manifest);
	store::Manifest m = store::Manifest::parse(h.manifest, path);
	store::CatalogEntry e;
	e.id = h.id;
	e.name = name.empty() ? h.name : name;
	e.created = now_iso8601();
	e.imported_from = path;
	e.bytes = m.total_bytes();
	for (const auto &p : m.parts)
		e.stamps[p.file] = store::stamp_of(work + "/" + p.file);
	make_readable(work, m);
	st.add(e, work);
	cleanup.dir.clear();
	return stored_base_info(st, e, m);
}

BaseInfo base_package_inspect(const std::string &path) {
	UniqueFd fd = open_for_reading(path);
	qemu::FdSource src(fd.get(), path);
	qemu::Reader r(src, path);
	format::PackageHeader h = format::read_base_package_header(r);
	BaseInfo info;
	info.manifest = store::Manifest::parse(h.manifest, path);
	info.entry.id = h.id;
	info.entry.name = h.name;
	info.entry.imported_from = path;
	info.entry.bytes = info.manifest.total_bytes();
	info.status = "unverified";
	info.part_allocated.assign(info.manifest.parts.size(), 0);
	return info;
}

} // namespace cloudlet::ops
