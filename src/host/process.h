// Runs a helper program (qemu-img) and waits for it; its stderr becomes
// the error message. No shell is involved: arguments are passed as they are.
#pragma once

#include <string>
#include <vector>

namespace cloudlet::host {

// Runs argv[0] (looked up in PATH) and returns its stdout. Throws
// CLOUDLET_E_IO naming the command, its exit status and stderr's last lines
// when it fails or cannot start.
std::string run_program(const std::vector<std::string> &argv);

} // namespace cloudlet::host
