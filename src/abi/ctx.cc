// Context creation, options and settings.
#include "abi/guard.h"
#include "abi/handles.h"
#include "abi/options.h"

#include <cloudlet.h>

using cloudlet::abi::guard;
using cloudlet::abi::init_options;
using cloudlet::abi::read_options;
using cloudlet::abi::require;

extern "C" {

CLOUDLET_API cloudlet_status cloudlet_ctx_options_init(cloudlet_ctx_options *opts, unsigned int version) {
	return guard(__func__, [&] {
		init_options(opts, version);
	});
}

CLOUDLET_API cloudlet_status cloudlet_ctx_new(cloudlet_ctx **out, const cloudlet_ctx_options *opts) {
	return guard(__func__, [&] {
		require(out != nullptr, "out is NULL");
		*out = nullptr;
		cloudlet_ctx_options o = read_options(opts);
		int level = cloudlet::abi::enum_value(o.log_level);
		require(level >= CLOUDLET_LOG_ERROR && level <= CLOUDLET_LOG_DEBUG, "log_level is out of range");
		cloudlet::ops::Settings s;
		s.libvirt_uri = o.libvirt_uri ? o.libvirt_uri : "";
		s.store_dir = o.store_dir ? o.store_dir : "";
		s.cpu_model = o.cpu_model ? o.cpu_model : "";
		s.worker_threads = o.worker_threads;
		*out = new cloudlet_ctx(std::move(s), cloudlet::Logger(o.log_cb, o.log_userdata, o.log_level));
	});
}

CLOUDLET_API void cloudlet_ctx_free(cloudlet_ctx *ctx) {
	delete ctx;
}

CLOUDLET_API cloudlet_status cloudlet_ctx_settings(const char **libvirt_uri, const char **store_dir,
                                                   const char **cpu_model, unsigned int *worker_threads,
                                                   const cloudlet_ctx *ctx) {
	return guard(__func__, [&] {
		require(ctx != nullptr, "ctx is NULL");
		const auto &s = ctx->ctx.settings();
		if (libvirt_uri)
			*libvirt_uri = s.libvirt_uri.c_str();
		if (store_dir)
			*store_dir = s.store_dir.c_str();
		if (cpu_model)
			*cpu_model = s.cpu_model.c_str();
		if (worker_threads)
			*worker_threads = s.worker_threads;
	});
}

} // extern "C"
