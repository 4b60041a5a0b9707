// Where a domain's virtio rings are in guest-physical memory, asked of QEMU
// (QMP x-query-virtio, x-query-virtio-status, x-query-virtio-queue-status;
// QEMU 7.2). Why: loading a virtio device's state reads its rings, so a VM
// started before its memory arrived (docs/early-start.md) cannot run until
// those pages are there; an overlay stores them first.
#pragma once

#include <libvirt/libvirt.h>

#include <cstdint>
#include <vector>

namespace cloudlet::virt {

struct GuestRange {
	uint64_t gpa = 0, bytes = 0;
};

// The descriptor table, available and used ring of every queue of every
// virtio device QEMU lists (queues not set up, at address 0, left out).
// Throws CLOUDLET_E_LIBVIRT when QEMU does not answer (a QEMU without
// these commands among them).
std::vector<GuestRange> virtio_ring_ranges(virDomainPtr dom);

} // namespace cloudlet::virt
