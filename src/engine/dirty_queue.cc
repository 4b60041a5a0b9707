#include "engine/dirty_queue.h"

#include "chunk/chunk_record.h"
#include "util/error.h"
#include "util/fd_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace cloudlet::engine {

using chunk::kChunkSize;

DirtyQueue::DirtyQueue(const std::string &dir, uint64_t budget_bytes)
    : dir_(dir), budget_slots_(std::max<uint64_t>(16, budget_bytes / kChunkSize)) {
	fd_.reset(open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
	if (!fd_)
		fail_errno("cannot create a temporary file in " + dir, errno);
}

void DirtyQueue::pwrite_slot(uint64_t slot, const uint8_t *data) {
	pwrite_all(fd_.get(), data, kChunkSize, slot * kChunkSize, "a temporary file in " + dir_);
}

void DirtyQueue::pread_slot(uint64_t slot, uint8_t *data) {
	pread_full(fd_.get(), data, kChunkSize, slot * kChunkSize, "a temporary file in " + dir_);
}

void DirtyQueue::put(uint64_t key, const uint8_t *data, uint64_t version) {
	std::unique_lock<std::mutex> l(mu_);
	if (aborted_)
		fail(CLOUDLET_E_CANCELLED, "the handoff stopped");
	auto it = waiting_.find(key);
	if (it != waiting_.end()) {
		pwrite_slot(it->second.slot, data);
		it->second.version = version;
		replaced_++;
		return;
	}
	room_.wait(l, [&] { return aborted_ || waiting_.size() < budget_slots_; });
	if (aborted_)
		fail(CLOUDLET_E_CANCELLED, "the handoff stopped");
	uint64_t slot;
	if (!free_slots_.empty()) {
		slot = free_slots_.back();
		free_slots_.pop_back();
	} else {
		slot = next_slot_++;
	}
	pwrite_slot(slot, data);
	waiting_[key] = {slot, version};
	order_.push_back(key);
	ready_.notify_one();
}

bool DirtyQueue::take(uint64_t *key, uint8_t *data, uint64_t *version) {
	std::unique_lock<std::mutex> l(mu_);
	ready_.wait(l, [&] { return aborted_ || closed_ || !order_.empty(); });
	if (aborted_ || order_.empty())
		return false;
	*key = order_.front();
	order_.pop_front();
	Entry e = waiting_.at(*key);
	waiting_.erase(*key);
	pread_slot(e.slot, data);
	*version = e.version;
	free_slots_.push_back(e.slot);
	room_.notify_one();
	return true;
}

void DirtyQueue::close() {
	std::lock_guard<std::mutex> l(mu_);
	closed_ = true;
	ready_.notify_all();
}

void DirtyQueue::abort() {
	std::lock_guard<std::mutex> l(mu_);
	aborted_ = true;
	ready_.notify_all();
	room_.notify_all();
}

void DirtyQueue::set_budget(uint64_t bytes) {
	std::lock_guard<std::mutex> l(mu_);
	budget_slots_ = std::max<uint64_t>(16, bytes / kChunkSize);
	room_.notify_all();
}

uint64_t DirtyQueue::waiting() const {
	std::lock_guard<std::mutex> l(mu_);
	return waiting_.size();
}

} // namespace cloudlet::engine
