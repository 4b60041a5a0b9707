// What synthesis and a handoff's destination share: turning the header of a
// launch VM (an overlay's, or a handoff OFFER's) into a prepared instance on
// this cloudlet — checks first, creating nothing if any fails — and, once
// every chunk is applied, restoring it through libvirt. docs/synthesis.md.
#pragma once

#include "engine/overlay_apply.h"
#include "engine/postcopy_source.h"
#include "store/undo_journal.h"
#include "format/overlay_file.h"
#include "ops/base.h"
#include "ops/base_verify.h"
#include "ops/context.h"
#include "util/mapped_file.h"
#include "util/progress.h"
#include "virt/nic_swap.h"
#include "virt/postcopy_incoming.h"

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <thread>
#include <string>
#include <vector>

namespace cloudlet::ops {

struct LaunchRequest {
	std::string base;      // "": the header's; else an ID or name that must be it
	std::string name;      // "": "<base name>-<8 hex>"
	std::string virt_type; // "": the base's
	std::string uuid;      // "": a new random one
	virt::NicRequest nic;  // checked up front
	uint64_t space_needed = 64ull << 20;
	bool postcopy = false; // restored by postcopy: refused up front where QEMU cannot
	const char *what = "the overlay"; // in messages: "the overlay needs base …"
};

// Everything that exists because of a launch; removed on destruction unless
// keep() was called (domain destroyed, folder removed).
class LaunchCleanup {
public:
	~LaunchCleanup();
	void keep() { keep_ = true; }
	std::string dir, domain;
	std::shared_ptr<virt::Connection> conn;
	// Undoes the same if the process dies (ops/recovery.h); goes with this.
	std::unique_ptr<store::UndoJournal> journal;

private:
	bool keep_ = false;
};

struct LaunchTarget {
	std::string name, uuid, dir, virt_type, base_id;
	std::string nic_backend; // virt::InstancePlan::nic_backend, from the NIC request
	BaseInfo base;
	std::vector<const store::Part *> disk_parts; // in the header's disk order
	std::vector<std::unique_ptr<MappedFile>> disk_maps;
	std::unique_ptr<VerifiedPages> base_memory;
	engine::ApplyBase apply_base;
	std::vector<std::string> layer_paths;
	std::unique_ptr<engine::OverlayApplier> applier;
	std::shared_ptr<virt::Connection> conn;
	format::BaseBounds bounds; // the base's sizes, for checking references
};

// Refuses up front (base missing/wrong/corrupt, CPU model, NIC request,
// disks, name, space), then creates the instance folder, its disk layers
// and the applier. `cleanup` learns what to remove.
void prepare_launch(Context &ctx, const format::OverlayHeader &h, const LaunchRequest &req, Progress &progress,
                    LaunchTarget &t, LaunchCleanup &cleanup);

// The domain XML of the launch VM: the base's, with this instance's identity
// and files, and the launch NICs' facts (docs/synthesis.md).
std::string launch_xml(const LaunchTarget &t, const format::OverlayHeader &h);

// After the last chunk and the device state: completes the disk layers,
// builds the domain XML (the base's, plus the launch NICs' facts) and
// restores the VM running, or paused with `paused`.
void restore_launch(LaunchTarget &t, const format::OverlayHeader &h, bool paused, LaunchCleanup &cleanup,
                    Progress &progress);

// A launch VM that runs before its memory has arrived (docs/early-start.md):
// the disk layers are complete, the device state known, and the overlay's
// memory records still come. Created from the start block: finishes the
// disk layers, starts the domain under `-incoming defer` and serves its
// memory by postcopy on a thread of its own, holding back the pages `named`
// (the start block's bitmap) until arrived() says their record is applied.
// `running` is called with the domain once it runs (on that thread);
// `stop_reader` when serving fails, to wake a reader blocked on the network.
class EarlyStart {
public:
	EarlyStart(LaunchTarget &t, const format::OverlayHeader &h, LaunchCleanup &cleanup,
	           const std::vector<uint8_t> &named, std::function<void(virt::DomainRef)> running,
	           std::function<void()> stop_reader, Progress &progress);
	~EarlyStart(); // a start not finished is abandoned
	EarlyStart(const EarlyStart &) = delete;
	EarlyStart &operator=(const EarlyStart &) = delete;
	void arrived(uint64_t page) { arrivals_.arrived(page); }
	// The reader returned: waits until QEMU holds all of the memory. Throws
	// what serving failed with.
	engine::PostcopyStats finish();
	// The reader failed: QEMU is ended (its memory can never be complete)
	// and the thread joined. Never throws.
	void abandon();
	// Serving failed; finish() and, after abandon(), throw_failure() throw why.
	bool failed() const { return failed_; }
	void throw_failure() const {
		if (error_)
			std::rethrow_exception(error_);
	}

private:
	std::unique_ptr<virt::IncomingPostcopy> in_;
	engine::ArrivingPages arrivals_;
	std::function<void(virt::DomainRef)> running_;
	std::function<void()> stop_reader_;
	std::thread thread_;
	engine::PostcopyStats stats_;
	std::exception_ptr error_;
	std::atomic<bool> failed_{false};
};

// The same, by postcopy (docs/early-start.md): the VM runs as soon as QEMU
// has loaded its device state, and its memory follows behind it, the pages
// it faults on first. `running` is called with the domain once it runs,
// while its memory still streams in (the NIC swap goes there: the guest
// answers sooner). Returns once QEMU holds all of it and `running` returned.
engine::PostcopyStats restore_launch_postcopy(LaunchTarget &t, const format::OverlayHeader &h, LaunchCleanup &cleanup,
                                              const std::function<void(virt::DomainRef)> &running, Progress &progress);

} // namespace cloudlet::ops
