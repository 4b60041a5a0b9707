// The ABI layer's one catch-all: runs the body of an exported function,
// turns any exception into a status code plus the thread-local message, and
// clears the message on success. Nothing thrown inside the library gets
// past this point.
#pragma once

#include "util/error.h"

#include <cloudlet.h>

#include <new>
#include <cstring>
#include <string>

namespace cloudlet::abi {

void set_error(cloudlet_status status, const char *function, const char *message) noexcept;
void clear_error() noexcept;

template <class F>
cloudlet_status guard(const char *function, F &&body) noexcept {
	try {
		body();
		clear_error();
		return CLOUDLET_OK;
	} catch (const Error &e) {
		set_error(e.status(), function, e.what());
		return e.status();
	} catch (const std::bad_alloc &) {
		set_error(CLOUDLET_E_NOMEM, function, "out of memory");
		return CLOUDLET_E_NOMEM;
	} catch (const std::exception &e) {
		set_error(CLOUDLET_E_INTERNAL, function, e.what());
		return CLOUDLET_E_INTERNAL;
	} catch (...) {
		set_error(CLOUDLET_E_INTERNAL, function, "unknown exception");
		return CLOUDLET_E_INTERNAL;
	}
}

// The value a C caller stored in an enum field, read without loading an
// out-of-range enum (undefined in C++): callers may pass anything.
template <class E> int enum_value(const E &e) {
	static_assert(sizeof(E) == sizeof(int), "C enums are int-sized here");
	int v;
	std::memcpy(&v, &e, sizeof v);
	return v;
}

// Argument checks used at the top of exported functions.
inline void require(bool ok, const char *what) {
	if (!ok)
		throw Error(CLOUDLET_E_INVALID_ARG, what);
}

} // namespace cloudlet::abi
