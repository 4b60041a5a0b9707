// Restoring a domain from a save image that is produced while libvirt reads
// it: the image goes through a FIFO (libvirt accepts one as the save file,
// docs/platform.md), so QEMU starts while the memory is still being written
// and no copy of the image ever lands on disk.
#pragma once

#include "stream_writer.h"
#include "util/progress.h"

#include <libvirt/libvirt.h>

#include <functional>
#include <string>

namespace cloudlet::virt {

// Creates the FIFO `fifo` (removed again before returning), asks libvirt to
// restore from it (running) on another thread, and calls `produce` with a
// sink that writes into it. If `produce` throws, libvirt sees the image end
// early and fails; the producer's error is the one thrown (it came first),
// unless it was a failed write to the FIFO: then libvirt stopped reading
// first and its error is thrown (a closed FIFO only says "broken pipe"). SIGPIPE is blocked on
// the calling thread while writing. `paused`: the domain is left paused. Throws CLOUDLET_E_LIBVIRT when libvirt
// refuses the image. Cancel is checked once a MiB written; after a cancel
// (or any failure of `produce`) this returns when libvirt's restore call has
// ended, which takes as long as libvirt needs to start and tear down QEMU
// (up to about 2 s here: docs/reliability.md "Interrupted"), a wait neither
// destroying the domain nor killing QEMU shortens.
void restore_streamed(virConnectPtr conn, const std::string &fifo, const std::function<void(qemu::ByteSink &)> &produce,
                      bool paused, Progress &progress);

} // namespace cloudlet::virt
