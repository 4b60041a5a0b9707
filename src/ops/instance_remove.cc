// instance remove: deletes the private files (disk layers, logs) of an
// instance that no longer runs. Instances are transient libvirt domains, so
// their folders outlive them on purpose (the disk layers may hold work); an
// orchestrator that destroyed the domain calls this to finish the job.
#include "ops/base.h"
#include "ops/recovery.h"

#include "store/base_store.h"
#include "store/manifest.h"
#include "util/error.h"
#include "virt/domain.h"

#include <sys/stat.h>

namespace cloudlet::ops {

void instance_remove(Context &ctx, const std::string &name) {
	// A name is a file name under instances/, never a path.
	if (!store::safe_file_name(name))
		fail(CLOUDLET_E_INVALID_ARG, "instance name '" + name.substr(0, 64) +
		                                 "' must be letters, digits, '.', '-', '_'");
	recover_store(ctx); // what killed operations left (docs/reliability.md)
	store::BaseStore st(ctx.settings().store_dir);
	std::string dir = st.instances_dir() + "/" + name;
	struct stat sb;
	if (lstat(dir.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode))
		fail(CLOUDLET_E_NOT_FOUND, "no instance '" + name + "' in " + st.instances_dir());
	auto conn = ctx.connection();
	if (virt::DomainPtr dom = virt::find_domain(*conn, name)) {
		if (virt::is_active(dom.get()))
			fail(CLOUDLET_E_BUSY, "instance '" + name + "' still runs; destroy its domain first");
	}
	store::remove_tree(dir);
}

} // namespace cloudlet::ops
