// The status of the cloudlet::Error a piece of code throws, for tests that
// check how something fails.
#pragma once

#include "util/error.h"

#include <functional>
#include <string>

// Runs `f`, returns the status of the cloudlet::Error it throws (0 if none);
// its message into `msg` if given.
inline int status_of(const std::function<void()> &f, std::string *msg = nullptr) {
	try {
		f();
	} catch (const cloudlet::Error &e) {
		if (msg)
			*msg = e.what();
		return e.status();
	}
	return 0;
}
