#include "util/error.h"

#include <cerrno>
#include <cstring>

namespace cloudlet {

std::string errno_message(const std::string &what, int err) {
	return what + ": " + std::strerror(err);
}

void fail_errno(const std::string &what, int err) {
	cloudlet_status st = CLOUDLET_E_IO;
	if (err == EACCES || err == EPERM)
		st = CLOUDLET_E_PERMISSION;
	else if (err == ENOENT)
		st = CLOUDLET_E_NOT_FOUND;
	else if (err == ENOMEM)
		st = CLOUDLET_E_NOMEM;
	else if (err == EEXIST)
		st = CLOUDLET_E_EXISTS;
	throw Error(st, errno_message(what, err));
}

} // namespace cloudlet
