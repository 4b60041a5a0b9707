// Proves that a virt type really runs a guest: boots a Linux kernel (no
// initramfs, no disk) in a transient domain and watches its serial console
// until the kernel has finished initialising (it then panics looking for a
// root file system, which is the success signal). Opening /dev/kvm is not
// enough: on hosts with broken nested virtualisation KVM creates VMs whose
// guests hang as soon as the firmware hands over to the kernel.
#pragma once

#include "util/progress.h"
#include "virt/connection.h"

#include <cloudlet.h>

#include <chrono>
#include <string>

namespace cloudlet::virt {

struct BootProbeResult {
	cloudlet_tristate usable = CLOUDLET_UNKNOWN;
	std::string detail;
	double seconds = 0;
	bool hung = false; // started, but the kernel never finished booting
};

// Needs a local connection (the console is read from a file). The domain is
// transient and auto-destroyed with the connection, so a crash of the
// caller leaves nothing behind; it is always destroyed before returning.
BootProbeResult boot_probe(const Connection &conn, const std::string &virt_type,
                           const std::string &kernel, std::chrono::milliseconds timeout,
                           const Progress &progress);

// Classifies a console log: "ok" once the kernel finished initialising,
// "panic" on an early panic, "" while undecided. Exposed for tests.
std::string classify_console(const std::string &log, std::string *evidence);

} // namespace cloudlet::virt
