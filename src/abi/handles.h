// The definitions behind the public opaque handles.
#pragma once

#include "ops/context.h"

#include <cloudlet.h>

#include <string>

struct cloudlet_ctx {
	explicit cloudlet_ctx(cloudlet::ops::Settings s, cloudlet::Logger l) : ctx(std::move(s), l) {}
	cloudlet::ops::Context ctx;
};
