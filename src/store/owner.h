// Which process owns a piece of work in the store, so that a later process
// can tell work whose owner died (SIGKILL, crash, power loss) from work under
// way, and undo it (ops/recovery.h). A process is its pid plus its start time
// (kernel clock ticks since boot): pids are reused, the pair is not.
#pragma once

#include <string>

namespace cloudlet::store {

struct ProcessId {
	long pid = 0;
	unsigned long long start = 0;
};

ProcessId this_process();
// False once the process has exited (or its pid belongs to another process).
bool alive(const ProcessId &p);

// "p<pid>.<start>": embedded in work folder names.
std::string process_tag(const ProcessId &p);
// Finds a process tag in `name` (e.g. "create-p1234.5678-Ab12Cd").
bool parse_process_tag(const std::string &name, ProcessId *out);

} // namespace cloudlet::store
