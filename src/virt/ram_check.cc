#include "virt/ram_check.h"

#include "util/clock.h"
#include "util/error.h"

namespace cloudlet::virt {

RamCheck::~RamCheck() {
	prescan_stop_ = true;
	join_prescan();
}

void RamCheck::on_ram_blocks(const qemu::StreamInfo &i) {
	ledger_ = std::make_unique<PageLedger>(i.total_pages);
	{
		std::lock_guard lk(mu_);
		blocks_ = i.blocks;
	}
	out_.on_ram_blocks(i);
}

void RamCheck::on_page(uint32_t block, uint64_t linear, const uint8_t *data, uint8_t fill, uint64_t section) {
	if (ledger_)
		ledger_->record(linear, data, fill);
	out_.on_page(block, linear, data, fill, section);
}

bool RamCheck::locate(virDomainPtr dom, const std::string &block) {
	std::vector<qemu::RamBlock> blocks;
	{
		std::lock_guard lk(mu_);
		blocks = blocks_;
	}
	if (blocks.empty())
		return false; // no table yet
	for (uint32_t i = 0; i < blocks.size(); i++)
		if (blocks[i].name == block) {
			auto ram = std::make_unique<GuestRam>(dom, block, blocks[i].length);
			std::lock_guard lk(mu_);
			ram_index_ = i;
			ram_block_ = blocks[i];
			ram_ = std::move(ram);
			return true;
		}
	fail(CLOUDLET_E_UNSUPPORTED, "the stream has no RAM block " + block);
}

void RamCheck::vm_stopped() {
	std::lock_guard lk(mu_);
	if (!ram_ || prescan_.joinable())
		return;
	prescan_stop_ = false;
	prescan_ok_ = false;
	prescan_ = std::thread([this] {
		auto t = Clock::now();
		try {
			ledger_->hash_paused(
			    ram_block_.first_page, ram_block_.pages(),
			    [this](uint64_t off, uint8_t *buf, size_t n) { ram_->read(off, buf, n); }, 2, &prescan_stop_);
			prescan_ok_ = !prescan_stop_;
		} catch (const Error &) {
			// reconcile() reads the RAM itself and reports what is wrong
		}
		prescan_seconds_ = since(t);
	});
}

void RamCheck::vm_resumed() {
	std::lock_guard lk(mu_);
	prescan_stop_ = true;
	prescan_stale_ = true;
}

uint64_t RamCheck::reconcile(virDomainPtr dom, const std::string &block, uint64_t section) {
	join_prescan();
	if (!ledger_)
		return 0;
	if (!ram_ && !locate(dom, block))
		fail(CLOUDLET_E_UNSUPPORTED, "the stream has no RAM block table");
	if (!prescan_ok_ || prescan_stale_)
		ledger_->forget_paused();
	else
		used_prescan_ = true;
	uint32_t index = ram_index_;
	auto read = [&](uint64_t off, uint8_t *buf, size_t n) { ram_->read(off, buf, n); };
	auto fix = [&](uint64_t linear, const uint8_t *data) { out_.on_page(index, linear, data, 0, section); };
	return ledger_->reconcile(ram_block_.first_page, ram_block_.pages(), read, fix);
}

void RamCheck::join_prescan() {
	std::thread t;
	{
		std::lock_guard lk(mu_);
		t = std::move(prescan_);
	}
	if (t.joinable())
		t.join();
}

} // namespace cloudlet::virt
