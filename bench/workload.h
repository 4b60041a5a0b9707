// The project's benchmark workloads, shared by bench_overlay,
// bench_synthesis and bench_handoff:
// - busybox: the small test guest (256 MiB, 64 MiB disk, a virtio NIC)
//   becomes a base; an instance of it is customised: 16 MiB of random data
//   and a copy of it, copies of busybox (in the base's page cache already),
//   8 MiB of compressible text, 8 MiB of zeros, 2 MiB of new data on the disk
//   and 1 MiB copied from the base's disk data.
// - debian: the real-OS guest (Debian 12, systemd, 2 GiB, 2 vCPUs, a 4 GiB
//   qcow2 system disk booted through GRUB) becomes a base once it is up;
//   an instance gets tests/guest/app-step.sh (16 MiB of random data read
//   through a program and served over HTTP, copies of python3.11 and shared
//   libraries, 5 MB of text, a 100k-row sqlite database, two systemd units).
#pragma once

#include "harness.h"

#include <cloudlet.h>

#include <string>
#include <vector>

namespace bench {

[[noreturn]] void die(const std::string &m);
double now();
void sh(const std::string &cmd);
uint64_t size_of(const std::string &path);
double mean(const std::vector<double> &v); // 0 for none
// A shell command's standard output.
std::string capture(const std::string &cmd);

enum class Guest { Busybox, Debian };
// "--guest busybox|debian" in argv (removed from it); busybox by default.
Guest guest_from_args(int &argc, char **argv);
const char *guest_name(Guest g);

struct Workload {
	Guest guest = Guest::Busybox;
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
void make_workload(Workload &w, const std::string &label, Guest guest = Guest::Busybox);

// The base's state as one file (its save image, written from the base
// memory, followed by its disks with their holes left out): the dictionary
// the zstd baselines patch from.
void write_base_state(const Workload &w, const std::string &path, bool with_disk = true);

// Appends the data extents of `path` (SEEK_DATA .. SEEK_HOLE) to `out`:
// what a user does to a sparse raw disk before zstd --patch-from, which
// takes no reference over 2 GB.
void append_data_extents(const std::string &path, const std::string &out);

// The target names of the base's disks ("vda", ...).
std::vector<std::string> base_disks(const Workload &w);

// What a user would ship instead of an overlay, made from the running
// launch VM (which `virsh save` stops): in w.work, base.sav (the base's save
// image), sav.zst (the launch save image as a zstd patch against it),
// layer-<disk>.zst (each disk's copy-on-write layer), plain.xml (the
// restore XML, its disks pointing at plain-<disk>.qcow2, unpacked there)
// and nic.xml (a fresh NIC). Returns the layers' compressed bytes.
uint64_t make_plain_route_files(const Workload &w);
// Unpacks them (zstd -d) from folder `from` into w.work.
void unpack_plain_route(const Workload &w, const std::string &from);

} // namespace bench
