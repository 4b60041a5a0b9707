// The one exception type used inside libcloudlet. It carries the public
// status code so the ABI layer can translate it without guessing; it never
// crosses the C boundary (src/abi/guard.h catches it).
#pragma once

#include <cloudlet.h>

#include <stdexcept>
#include <string>

namespace cloudlet {

class Error : public std::runtime_error {
public:
	Error(cloudlet_status status, const std::string &message)
	    : std::runtime_error(message), status_(status) {}
	cloudlet_status status() const noexcept { return status_; }

private:
	cloudlet_status status_;
};

// Throws Error(status, message). A function so call sites stay one line.
[[noreturn]] inline void fail(cloudlet_status status, const std::string &message) {
	throw Error(status, message);
}

// "what: strerror(errno)" for a failed system call.
std::string errno_message(const std::string &what, int err);

// Throws CLOUDLET_E_IO (or E_PERMISSION / E_NOT_FOUND by errno) for a failed
// system call.
[[noreturn]] void fail_errno(const std::string &what, int err);

} // namespace cloudlet
