// The options structs of the public header, one table each: the size of
// every version the struct has had and its defaults (the _INIT macro).
// Fields are only ever appended with a new version (docs/api.md), so a
// caller of version N has the struct's first sizes[N-1] bytes, and the
// newest version is the table's last. Both halves of the contract are done
// from the table and nowhere else: a struct's *_options_init() writes the
// defaults as far as the caller's version goes (init_options), and an
// exported call reads only the fields the caller's version has, the newer
// ones keeping their defaults (read_options). A new version is one more
// size in its table.
#pragma once

#include "abi/guard.h"

#include <cloudlet.h>

#include <cstddef>
#include <cstring>
#include <iterator>
#include <string>

namespace cloudlet::abi {

template <class T> struct OptionsTable; // one per options struct, below

template <> struct OptionsTable<cloudlet_ctx_options> {
	static constexpr const char *name = "cloudlet_ctx_options";
	static constexpr cloudlet_ctx_options defaults = CLOUDLET_CTX_OPTIONS_INIT;
	static constexpr size_t sizes[] = {sizeof(cloudlet_ctx_options)};
};

template <> struct OptionsTable<cloudlet_doctor_options> {
	static constexpr const char *name = "cloudlet_doctor_options";
	static constexpr cloudlet_doctor_options defaults = CLOUDLET_DOCTOR_OPTIONS_INIT;
	static constexpr size_t sizes[] = {sizeof(cloudlet_doctor_options)};
};

template <> struct OptionsTable<cloudlet_snapshot_options> {
	static constexpr const char *name = "cloudlet_snapshot_options";
	static constexpr cloudlet_snapshot_options defaults = CLOUDLET_SNAPSHOT_OPTIONS_INIT;
	static constexpr size_t sizes[] = {sizeof(cloudlet_snapshot_options)};
};

template <> struct OptionsTable<cloudlet_capture_options> {
	static constexpr const char *name = "cloudlet_capture_options";
	static constexpr cloudlet_capture_options defaults = CLOUDLET_CAPTURE_OPTIONS_INIT;
	static constexpr size_t sizes[] = {sizeof(cloudlet_capture_options)};
};

template <> struct OptionsTable<cloudlet_base_options> {
	static constexpr const char *name = "cloudlet_base_options";
	static constexpr cloudlet_base_options defaults = CLOUDLET_BASE_OPTIONS_INIT;
	static constexpr size_t sizes[] = {sizeof(cloudlet_base_options)};
};

template <> struct OptionsTable<cloudlet_resume_options> {
	static constexpr const char *name = "cloudlet_resume_options";
	static constexpr cloudlet_resume_options defaults = CLOUDLET_RESUME_OPTIONS_INIT;
	static constexpr size_t sizes[] = {offsetof(cloudlet_resume_options, uuid), sizeof(cloudlet_resume_options)};
};

template <> struct OptionsTable<cloudlet_overlay_options> {
	static constexpr const char *name = "cloudlet_overlay_options";
	static constexpr cloudlet_overlay_options defaults = CLOUDLET_OVERLAY_OPTIONS_INIT;
	static constexpr size_t sizes[] = {sizeof(cloudlet_overlay_options)};
};

template <> struct OptionsTable<cloudlet_synthesis_options> {
	static constexpr const char *name = "cloudlet_synthesis_options";
	static constexpr cloudlet_synthesis_options defaults = CLOUDLET_SYNTHESIS_OPTIONS_INIT;
	static constexpr size_t sizes[] = {offsetof(cloudlet_synthesis_options, uuid),
	                                   offsetof(cloudlet_synthesis_options, flags),
	                                   sizeof(cloudlet_synthesis_options)};
};

template <> struct OptionsTable<cloudlet_handoff_options> {
	static constexpr const char *name = "cloudlet_handoff_options";
	static constexpr cloudlet_handoff_options defaults = CLOUDLET_HANDOFF_OPTIONS_INIT;
	static constexpr size_t sizes[] = {offsetof(cloudlet_handoff_options, uuid),
	                                   offsetof(cloudlet_handoff_options, security),
	                                   offsetof(cloudlet_handoff_options, resume_window_seconds),
	                                   sizeof(cloudlet_handoff_options)};
};

// The newest version of T this library knows: its table's last.
template <class T> constexpr unsigned kOptionsVersion = static_cast<unsigned>(std::size(OptionsTable<T>::sizes));

// A table agrees with the header: as many versions as the header's
// *_OPTIONS_VERSION (which the _INIT defaults carry), each version larger
// than the one before, the newest the whole struct.
template <class T> constexpr bool table_matches_header() {
	const auto &sizes = OptionsTable<T>::sizes;
	if (OptionsTable<T>::defaults.version != kOptionsVersion<T> || sizes[std::size(sizes) - 1] != sizeof(T))
		return false;
	for (size_t i = 1; i < std::size(sizes); i++)
		if (sizes[i] <= sizes[i - 1])
			return false;
	return true;
}
static_assert(table_matches_header<cloudlet_ctx_options>());
static_assert(table_matches_header<cloudlet_doctor_options>());
static_assert(table_matches_header<cloudlet_snapshot_options>());
static_assert(table_matches_header<cloudlet_capture_options>());
static_assert(table_matches_header<cloudlet_base_options>());
static_assert(table_matches_header<cloudlet_resume_options>());
static_assert(table_matches_header<cloudlet_overlay_options>());
static_assert(table_matches_header<cloudlet_synthesis_options>());
static_assert(table_matches_header<cloudlet_handoff_options>());

// How many bytes of T a caller of `version` has; CLOUDLET_E_VERSION for a
// version this library does not know (1..newest is accepted).
template <class T> size_t options_bytes(unsigned int version) {
	if (version == 0 || version > kOptionsVersion<T>)
		throw Error(CLOUDLET_E_VERSION, std::string(OptionsTable<T>::name) + " version " + std::to_string(version) +
		                                    " is not supported (this library knows 1.." +
		                                    std::to_string(kOptionsVersion<T>) +
		                                    "; initialise it with the _INIT macro)");
	return OptionsTable<T>::sizes[version - 1];
}

// The body of every *_options_init(): the defaults with the requested
// version, written only as far as that version's struct goes.
template <class T> void init_options(T *opts, unsigned int version) {
	require(opts != nullptr, "opts is NULL");
	size_t n = options_bytes<T>(version);
	T o = OptionsTable<T>::defaults;
	o.version = version;
	std::memcpy(static_cast<void *>(opts), &o, n);
}

// The caller's options (version-checked), or the defaults for NULL. Only the
// fields the caller's version has are read; newer ones keep their defaults.
template <class T> T read_options(const T *opts) {
	T o = OptionsTable<T>::defaults;
	if (opts)
		std::memcpy(static_cast<void *>(&o), opts, options_bytes<T>(opts->version));
	return o;
}

} // namespace cloudlet::abi
