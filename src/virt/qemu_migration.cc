#include "virt/qemu_migration.h"

#include "util/error.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace cloudlet::virt {

namespace {

// Capabilities that change the stream into something our parser refuses or
// that need a channel back from the destination, which a file does not
// have. Whichever of them this QEMU knows are switched off for the capture.
const char *const kMustBeOff[] = {
    "xbzrle",      "compress",        "multifd",       "postcopy-ram", "postcopy-preempt",
    "x-colo",      "release-ram",     "return-path",   "block",        "background-snapshot",
    "zero-copy-send", "x-ignore-shared", "mapped-ram", "switchover-ack", "dirty-bitmaps",
};

// No limit worth the name for a local descriptor (QEMU's default is 128 MiB/s).
constexpr int64_t kUnlimitedBandwidth = int64_t(1) << 40;

uint64_t u64_member(json_object *o, const char *key) {
	json_object *v = nullptr;
	if (!o || !json_object_object_get_ex(o, key, &v))
		return 0;
	int64_t n = json_object_get_int64(v);
	return n > 0 ? static_cast<uint64_t>(n) : 0;
}

std::string string_member(json_object *o, const char *key) {
	json_object *v = nullptr;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}


std::atomic<unsigned> fd_counter{0};

} // namespace

qemu::JsonPtr capability_args(const std::vector<std::pair<std::string, bool>> &caps) {
	qemu::JsonPtr args(json_object_new_object());
	json_object *list = json_object_new_array();
	for (const auto &[name, on] : caps) {
		json_object *c = json_object_new_object();
		json_object_object_add(c, "capability", json_object_new_string(name.c_str()));
		json_object_object_add(c, "state", json_object_new_boolean(on));
		json_object_array_add(list, c);
	}
	json_object_object_add(args.get(), "capabilities", list);
	return args;
}

OutgoingMigration::OutgoingMigration(virDomainPtr dom) : qmp_(dom), dom_(dom) {
	fd_name_ = "cloudlet-migration-" + std::to_string(getpid()) + "-" + std::to_string(fd_counter++);
}

OutgoingMigration::~OutgoingMigration() {
	// Best effort throughout: the domain may be gone, and a destructor must
	// not throw. Nothing here decides whether the operation succeeded.
	try {
		if (fd_in_qemu_ && !started_) {
			qemu::JsonPtr args(json_object_new_object());
			json_object_object_add(args.get(), "fdname", json_object_new_string(fd_name_.c_str()));
			qmp_.execute("closefd", args.get());
		}
	} catch (const Error &) {
	}
	try {
		if (!saved_caps_.empty())
			qmp_.execute("migrate-set-capabilities", capability_args(saved_caps_).get());
	} catch (const Error &) {
	}
	try {
		if (saved_downtime_) {
			qemu::JsonPtr args(json_object_new_object());
			json_object_object_add(args.get(), "downtime-limit", json_object_new_int64(old_downtime_));
			qmp_.execute("migrate-set-parameters", args.get());
		}
	} catch (const Error &) {
	}
	try {
		if (saved_throttle_) {
			qemu::JsonPtr args(json_object_new_object());
			json_object_object_add(args.get(), "cpu-throttle-initial", json_object_new_int64(old_throttle_initial_));
			json_object_object_add(args.get(), "cpu-throttle-increment", json_object_new_int64(old_throttle_increment_));
			qmp_.execute("migrate-set-parameters", args.get());
		}
	} catch (const Error &) {
	}
	try {
		if (saved_bandwidth_) {
			qemu::JsonPtr args(json_object_new_object());
			json_object_object_add(args.get(), "max-bandwidth", json_object_new_int64(old_bandwidth_));
			qmp_.execute("migrate-set-parameters", args.get());
		}
	} catch (const Error &) {
	}
}

void OutgoingMigration::prepare(bool auto_converge, uint64_t downtime_limit_ms) {
	MigrationStatus st = status();
	if (!st.status.empty() && st.status != "none" && !st.terminal())
		fail(CLOUDLET_E_BUSY, std::string("domain ") + virDomainGetName(dom_) +
		                          " is already migrating (QEMU migration status '" + st.status + "')");

	// QEMU leaves a domain that was paused when migrated in "postmigrate"
	// and refuses to migrate it again until it has run (libvirt's own
	// memory snapshots leave it so too). Say so in our words.
	qemu::JsonPtr run = qmp_.execute("query-status");
	std::string runstate = string_member(run.get(), "status");
	if (runstate == "postmigrate")
		fail(CLOUDLET_E_BUSY, std::string("domain ") + virDomainGetName(dom_) +
		                          " is paused in QEMU's post-migration state (it was paused when an earlier "
		                          "capture or migration took it); QEMU cannot migrate it again until it has "
		                          "run: resume it first");

	qemu::JsonPtr caps = qmp_.execute("query-migrate-capabilities");
	std::vector<std::pair<std::string, bool>> want, old;
	size_t n = json_object_is_type(caps.get(), json_type_array) ? json_object_array_length(caps.get()) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *c = json_object_array_get_idx(caps.get(), i);
		std::string name = string_member(c, "capability");
		json_object *state = nullptr;
		if (name.empty() || !json_object_object_get_ex(c, "state", &state))
			continue;
		bool on = json_object_get_boolean(state);
		bool target = on;
		for (const char *off : kMustBeOff)
			if (name == off)
				target = false;
		if (name == "auto-converge")
			target = auto_converge;
		if (target != on) {
			want.emplace_back(name, target);
			old.emplace_back(name, on);
		}
	}
	if (!want.empty()) {
		qmp_.execute("migrate-set-capabilities", capability_args(want).get());
		saved_caps_ = old;
	}

	qemu::JsonPtr params = qmp_.execute("query-migrate-parameters");
	json_object *bw = nullptr;
	if (json_object_object_get_ex(params.get(), "max-bandwidth", &bw)) {
		old_bandwidth_ = json_object_get_int64(bw);
		if (old_bandwidth_ < kUnlimitedBandwidth) {
			qemu::JsonPtr args(json_object_new_object());
			json_object_object_add(args.get(), "max-bandwidth", json_object_new_int64(kUnlimitedBandwidth));
			qmp_.execute("migrate-set-parameters", args.get());
			saved_bandwidth_ = true;
		}
	}
	json_object *dl = nullptr;
	if (downtime_limit_ms && json_object_object_get_ex(params.get(), "downtime-limit", &dl)) {
		old_downtime_ = json_object_get_int64(dl);
		qemu::JsonPtr args(json_object_new_object());
		json_object_object_add(args.get(), "downtime-limit", json_object_new_int64(static_cast<int64_t>(downtime_limit_ms)));
		qmp_.execute("migrate-set-parameters", args.get());
		saved_downtime_ = true;
	}
}

void OutgoingMigration::start(int fd) {
	qemu::JsonPtr args(json_object_new_object());
	json_object_object_add(args.get(), "fdname", json_object_new_string(fd_name_.c_str()));
	qmp_.execute_with_fds("getfd", args.get(), {fd});
	fd_in_qemu_ = true;
	qemu::JsonPtr margs(json_object_new_object());
	json_object_object_add(margs.get(), "uri", json_object_new_string(("fd:" + fd_name_).c_str()));
	qmp_.execute("migrate", margs.get());
	started_ = true; // QEMU's migration now owns (and will close) its copy
}

MigrationStatus OutgoingMigration::status() {
	qemu::JsonPtr r = qmp_.execute("query-migrate");
	MigrationStatus s;
	s.status = string_member(r.get(), "status");
	s.error = string_member(r.get(), "error-desc");
	s.downtime_ms = u64_member(r.get(), "downtime");
	s.cpu_throttle_pct = static_cast<unsigned>(std::min<uint64_t>(100, u64_member(r.get(), "cpu-throttle-percentage")));
	json_object *ram = nullptr;
	if (json_object_object_get_ex(r.get(), "ram", &ram)) {
		s.transferred = u64_member(ram, "transferred");
		s.remaining = u64_member(ram, "remaining");
		s.total = u64_member(ram, "total");
		s.dirty_sync_count = u64_member(ram, "dirty-sync-count");
		s.dirty_pages_rate = u64_member(ram, "dirty-pages-rate");
	}
	return s;
}

void OutgoingMigration::set_throttle_steps(unsigned initial, unsigned increment) {
	if (!saved_throttle_) {
		qemu::JsonPtr params = qmp_.execute("query-migrate-parameters");
		json_object *v = nullptr;
		if (!json_object_object_get_ex(params.get(), "cpu-throttle-initial", &v))
			return; // a QEMU without auto-converge's parameters: nothing to tune
		old_throttle_initial_ = json_object_get_int64(v);
		if (json_object_object_get_ex(params.get(), "cpu-throttle-increment", &v))
			old_throttle_increment_ = json_object_get_int64(v);
		saved_throttle_ = true;
	}
	qemu::JsonPtr args(json_object_new_object());
	json_object_object_add(args.get(), "cpu-throttle-initial", json_object_new_int64(std::clamp(initial, 1u, 99u)));
	json_object_object_add(args.get(), "cpu-throttle-increment", json_object_new_int64(std::clamp(increment, 1u, 99u)));
	qmp_.execute("migrate-set-parameters", args.get());
}

void OutgoingMigration::cancel() {
	qmp_.execute("migrate_cancel");
}

} // namespace cloudlet::virt
