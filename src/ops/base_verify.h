#pragma once

#include "ops/base.h"

namespace cloudlet::ops {

// Verifies a base; corruption is reported in the result (status "corrupt").
BaseInfo verify_base(store::BaseStore &st, const store::CatalogEntry &e, bool full, Progress &progress);

} // namespace cloudlet::ops
