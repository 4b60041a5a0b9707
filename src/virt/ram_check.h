// The check after a live capture of a TCG guest (docs/capture.md): QEMU
// before 9.0 loses guest writes from its dirty bitmap under TCG
// (virt/guest_ram.h), so the pages a live migration delivered are compared
// with the paused VM's RAM and every page whose last version never came is
// handed over as one more version.
//
// A RamCheck sits between the stream's parser and the caller's sink: it
// notes each page's newest version (virt/page_ledger.h) and passes it on.
// The watching thread locates the RAM in QEMU's process early (QEMU's
// monitor does not answer during its final pass), starts hashing the RAM
// when QEMU pauses the VM for that pass, and reconciles once QEMU is done.
#pragma once

#include "stream_parser.h"
#include "virt/guest_ram.h"
#include "virt/page_ledger.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cloudlet::virt {

class RamCheck : public qemu::StreamSink {
public:
	// Pages pass on to `out`, corrections too.
	explicit RamCheck(qemu::StreamSink &out) : out_(out) {}
	~RamCheck() override; // stops and joins the hashing
	RamCheck(const RamCheck &) = delete;
	RamCheck &operator=(const RamCheck &) = delete;

	// The parser's thread.
	void on_ram_blocks(const qemu::StreamInfo &i) override;
	void on_page(uint32_t block, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t section) override;

	// Locates RAM block `block` in QEMU's process once the stream has named
	// it; true when done, false while the stream has not given its block
	// table yet. Throws CLOUDLET_E_UNSUPPORTED if the RAM cannot be read.
	bool locate(virDomainPtr dom, const std::string &block);
	// The VM stopped (QEMU's STOP event, on libvirt's event thread): if this
	// is QEMU's final pass, the RAM no longer changes, so its hashes can be
	// taken now, beside the pass, instead of after it (PageLedger::hash_paused).
	void vm_stopped();
	// The VM ran again (RESUME): hashes taken since its STOP are stale.
	void vm_resumed();
	// After the stream ended cleanly, with the VM paused: the pages of the
	// block whose real content (read from QEMU's process) is not what the
	// stream last said go to the sink as one more version, in RAM section
	// `section`. Returns how many; throws CLOUDLET_E_UNSUPPORTED if the RAM
	// cannot be read.
	uint64_t reconcile(virDomainPtr dom, const std::string &block, uint64_t section);
	// Whether reconcile() used hashes taken during QEMU's final pass, and how long they took.
	bool used_prescan() const { return used_prescan_; }
	double prescan_seconds() const { return prescan_seconds_; }

private:
	void join_prescan();

	qemu::StreamSink &out_;
	std::unique_ptr<PageLedger> ledger_; // from the block table on
	std::mutex mu_;
	std::vector<qemu::RamBlock> blocks_; // the stream's block table (guarded by mu_)
	// The RAM block checked and its hashes taken during QEMU's final pass
	// (guarded by mu_ until the prescan is joined).
	std::unique_ptr<GuestRam> ram_;
	qemu::RamBlock ram_block_;
	uint32_t ram_index_ = 0;
	std::thread prescan_;
	std::atomic<bool> prescan_stop_{false}, prescan_ok_{false};
	bool prescan_stale_ = false, used_prescan_ = false;
	double prescan_seconds_ = 0;
};

} // namespace cloudlet::virt
