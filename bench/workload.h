// The project's benchmark workload, shared by bench_overlay and
// bench_synthesis: the test guest (256 MiB, 64 MiB disk, a virtio NIC)
// becomes a base; an instance of it is customised: 16 MiB of random data
// and a copy of it, copies of busybox (in the base's page cache already),
// 8 MiB of compressible text, 8 MiB of zeros, 2 MiB of new data on the disk
// and 1 MiB copied from the base's disk data.
#pragma once

#include "harness.h"

#include <cloudlet.h>

#include <string>

namespace bench {

[[noreturn]] void die(const std::string &m);
double now();
void sh(const std::string &cmd);
uint64_t size_of(const std::string &path);
// A shell command's standard output.
std::string capture(const std::string &cmd);

struct Workload {
	std::string work;       // scratch folder, removed by ~Workload
	std::string store;      // the store inside it
	cloudlet_ctx *ctx = nullptr;
	std::string base_dir;   // the base's folder
	std::string name;       // the customised instance (running)
	std::string inst_dir;   // its folder
	th_guest *launch = nullptr;
	~Workload();
};

// Builds it all; `label` names the scratch folder.
void make_workload(Workload &w, const std::string &label);

// The base's state as one file (its save image, written from the base
// memory, followed by its disk): the dictionary the zstd baselines patch from.
void write_base_state(const Workload &w, const std::string &path, bool with_disk = true);

} // namespace bench
