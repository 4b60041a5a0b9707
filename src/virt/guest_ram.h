// Direct reads of a paused QEMU's guest RAM, from the QEMU process itself
// (process_vm_readv), for checking what a live migration sent.
//
// Why: QEMU before 9.0 loses guest writes from its migration dirty bitmap
// under TCG (QEMU commit 03bfc2188f, "physmem: Fix migration dirty bitmap
// coherency with TCG memory access": the 64-page fast path of the bitmap
// sync clears bits without resetting the vCPUs' TLB write entries, so later
// stores through those entries mark nothing). A live capture of a TCG guest
// can therefore end with pages whose last version never entered the stream
// (measured here: 33 and 44 pages of a busy Debian guest in 2 of 4 runs,
// docs/handoff.md). Comparing the paused source against what was sent
// catches every such page. The RAM is located with HMP `gpa2hva` through
// libvirt's monitor passthrough and QEMU's pid from libvirt's pid file.
#pragma once

#include <libvirt/libvirt.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <sys/types.h>

namespace cloudlet::virt {

class GuestRam {
public:
	// Locates RAM block `block` ("pc.ram": guest-physical 0 upwards) of a
	// running or paused domain. Throws CLOUDLET_E_UNSUPPORTED with the reason
	// when it cannot (no pid file, the block is not at guest-physical 0, no
	// permission to read another process's memory).
	GuestRam(virDomainPtr dom, const std::string &block, uint64_t block_bytes);

	// Reads `n` bytes at `offset` into the block. Throws CLOUDLET_E_IO, or
	// CLOUDLET_E_UNSUPPORTED when the process may not be read or is gone.
	void read(uint64_t offset, uint8_t *buf, size_t n) const;

private:
	std::string what_;
	pid_t pid_ = 0;
	uint64_t hva_ = 0, bytes_ = 0;
};

// The pid of a running domain's QEMU (libvirt's system driver's pid file,
// checked against the process's command line). Throws CLOUDLET_E_UNSUPPORTED.
pid_t qemu_pid(const std::string &name);

// The host address HMP's `gpa2hva` prints for guest-physical 0, if the line
// names `block` ("Host virtual address for 0x0 (pc.ram) is 0x7f..."); 0 if not.
uint64_t parse_gpa2hva(const std::string &reply, const std::string &block);

} // namespace cloudlet::virt
