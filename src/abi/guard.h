// The ABI layer's one catch-all: runs the body of an exported function,
// turns any exception into a status code plus the thread-local message, and
// clears the message on success. Nothing thrown inside the library gets
// past this point.
#pragma once

#include "util/error.h"

#include <cloudlet.h>

#include <new>
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

// Argument checks used at the top of exported functions.
inline void require(bool ok, const char *what) {
	if (!ok)
		throw Error(CLOUDLET_E_INVALID_ARG, what);
}

// Checks an options struct's version field: 1..current is accepted.
inline void require_version(unsigned int version, unsigned int current, const char *what) {
	if (version == 0 || version > current)
		throw Error(CLOUDLET_E_VERSION, std::string(what) + " version " + std::to_string(version) +
		                                    " is not supported (this library knows 1.." +
		                                    std::to_string(current) + "; initialise it with the _INIT macro)");
}

} // namespace cloudlet::abi
