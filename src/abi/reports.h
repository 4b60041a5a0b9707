// Reports handed out to callers (cloudlet_*_info, *_report, *_result): the
// public struct is the base of a holder that also keeps the storage the
// struct's pointers point into, so one delete (the report's _free()) frees
// it all. Fields several reports share are filled here, once.
#pragma once

#include "ops/kind_counts.h"

#include <cloudlet.h>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace cloudlet::abi {

// Strings handed out inside a report: stable addresses for the report's life.
struct StringKeeper {
	std::deque<std::string> strings;
	const char *keep(const std::string &s) { return strings.emplace_back(s).c_str(); }
};

// The NICs of a result as parallel arrays of nic_count entries: the new
// MACs and the ones they replaced ("" where the old one is not known).
struct NicArrays {
	std::vector<const char *> macs, old_macs;
	// Fills the arrays and points the report's nic_count and macs at them,
	// and its old_macs where the report has that field.
	template <class Report>
	void fill(StringKeeper &k, Report &p, const std::vector<std::string> &now, const std::vector<std::string> &before) {
		for (size_t i = 0; i < now.size(); i++) {
			macs.push_back(k.keep(now[i]));
			old_macs.push_back(k.keep(i < before.size() ? before[i] : ""));
		}
		p.nic_count = macs.size();
		p.macs = macs.data();
		if constexpr (requires { p.old_macs; })
			p.old_macs = old_macs.data();
	}
};

// A report about a VM that runs here, with its fresh NICs.
template <class Report> struct VmReportHolder : Report, StringKeeper {
	NicArrays nics;
};

// The fields both instance reports have (cloudlet_instance_info,
// cloudlet_synthesis_info), from the ops result that has them
// (ops::InstanceInfo, ops::SynthesisInfo): the VM, its files, its NICs.
template <class Report, class Result> void fill_instance(VmReportHolder<Report> &h, const Result &r) {
	Report &p = h;
	p.name = h.keep(r.name);
	p.uuid = h.keep(r.uuid);
	p.base_id = h.keep(r.base_id);
	p.dir = h.keep(r.dir);
	p.virt_type = h.keep(r.virt_type);
	h.nics.fill(h, p, r.macs, r.old_macs);
}

// A report's chunk counts per CLOUDLET_CHUNK_*: the kinds ops counts by
// (shifted deltas already folded into the deltas) are exactly those.
inline void copy_kinds(uint64_t (&out)[CLOUDLET_CHUNK_KINDS], const ops::KindCounts &c) {
	static_assert(ops::KindCounts::kKinds == CLOUDLET_CHUNK_KINDS && ops::KindCounts::kDelta == CLOUDLET_CHUNK_DELTA);
	for (int k = 0; k < CLOUDLET_CHUNK_KINDS; k++)
		out[k] = c.n[k];
}

} // namespace cloudlet::abi
