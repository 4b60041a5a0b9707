/*
 * cloudlet.h - the public C interface of libcloudlet.
 *
 * libcloudlet turns ordinary libvirt/QEMU hosts into cloudlets: it keeps base
 * VMs, builds small VM overlays against them, synthesizes running VMs from
 * overlays and hands running VMs over to other cloudlets.
 *
 * This is the only public header. Conventions (docs/api.md has the details):
 *   - Every function returns a cloudlet_status; CLOUDLET_OK (0) is success and
 *     every error is negative. After an error, cloudlet_last_error_message()
 *     on the same thread says what failed, on which object, and why.
 *   - Output parameters come first.
 *   - Handles are opaque and come in new/free pairs. Anything the library
 *     allocates for the caller has its own free function.
 *   - Structs passed in (options) start with a `version` field: initialise
 *     them with the *_INIT macro or the *_init() function. Fields are only
 *     ever added at the end, with a new version; the library reads only the
 *     fields of the version a caller passes, so a program built against an
 *     older header keeps working. Structs handed out
 *     (reports) also start with `version`: a field added in version N is
 *     valid only when report->version >= N.
 *   - Long operations take a progress callback and a cancel handle.
 *
 * Thread safety: functions on different handles may run concurrently. A
 * cloudlet_ctx may be shared between threads; each function says whether it
 * may run concurrently on the same context. Error messages are per thread.
 */
#ifndef CLOUDLET_H
#define CLOUDLET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CLOUDLET_API __attribute__((visibility("default")))
#else
#define CLOUDLET_API
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

/** The version of this header. Compare with cloudlet_version() at run time. */
#define CLOUDLET_VERSION_MAJOR 0
#define CLOUDLET_VERSION_MINOR 1
#define CLOUDLET_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                  */
/* ------------------------------------------------------------------------ */

typedef enum cloudlet_status {
	CLOUDLET_OK = 0,
	CLOUDLET_E_INVALID_ARG = -1,  /**< a NULL or out-of-range argument */
	CLOUDLET_E_NOMEM = -2,        /**< out of memory */
	CLOUDLET_E_VERSION = -3,      /**< a struct version this library does not know */
	CLOUDLET_E_IO = -4,           /**< a file or socket operation failed */
	CLOUDLET_E_LIBVIRT = -5,      /**< libvirt refused or failed */
	CLOUDLET_E_NOT_FOUND = -6,    /**< no such domain, base, file ... */
	CLOUDLET_E_EXISTS = -7,       /**< the target already exists */
	CLOUDLET_E_CORRUPT = -8,      /**< input data is malformed or fails a check */
	CLOUDLET_E_UNSUPPORTED = -9,  /**< valid, but not something we handle */
	CLOUDLET_E_HOST = -10,        /**< this host cannot do it (CPU model, KVM ...) */
	CLOUDLET_E_CANCELLED = -11,   /**< cancelled by the caller */
	CLOUDLET_E_TIMEOUT = -12,     /**< a deadline passed */
	CLOUDLET_E_PERMISSION = -13,  /**< not allowed (file mode, token ...) */
	CLOUDLET_E_BUSY = -14,        /**< the object is busy with another operation (e.g. a migration) */
	CLOUDLET_E_INTERNAL = -99     /**< a bug in libcloudlet; please report it */
} cloudlet_status;

/**
 * A static, English name for a status ("invalid argument"). Never NULL;
 * unknown values give "unknown status". Thread-safe.
 */
CLOUDLET_API const char *cloudlet_strerror(cloudlet_status status);

/**
 * The detailed message of the last failed call on the calling thread, e.g.
 * "cloudlet_ctx_new: cannot connect to libvirt at 'qemu:///system': ...".
 * "" when the last call on this thread succeeded. The string belongs to the
 * library and stays valid until the next libcloudlet call on this thread.
 */
CLOUDLET_API const char *cloudlet_last_error_message(void);

/** The status of the last call on the calling thread (CLOUDLET_OK after success). */
CLOUDLET_API cloudlet_status cloudlet_last_error_status(void);

/**
 * The run-time library version. Any out-parameter may be NULL.
 * Thread-safe; never fails.
 */
CLOUDLET_API cloudlet_status cloudlet_version(int *major, int *minor, int *patch);

/** The run-time version as "MAJOR.MINOR.PATCH"; static storage. */
CLOUDLET_API const char *cloudlet_version_string(void);

/* ------------------------------------------------------------------------ */
/* Tri-state answers                                                        */
/* ------------------------------------------------------------------------ */

/** Answers to "does the host have X" that may not be known. */
typedef enum cloudlet_tristate {
	CLOUDLET_UNKNOWN = -1,
	CLOUDLET_NO = 0,
	CLOUDLET_YES = 1
} cloudlet_tristate;

/* ------------------------------------------------------------------------ */
/* Progress and cancellation                                                */
/* ------------------------------------------------------------------------ */

/**
 * Progress of a long operation. `phase` names the current step ("probe-kvm",
 * "capture-memory" ...); `done` and `total` count its units (bytes, pages,
 * steps; total 0 = unknown). May be called from a worker thread of the
 * operation, but never from two threads at once. Return 0 to continue, non-zero to cancel the operation (it then fails with
 * CLOUDLET_E_CANCELLED after undoing what it did).
 */
typedef int (*cloudlet_progress_cb)(const char *phase, uint64_t done,
                                    uint64_t total, void *userdata);

/**
 * A cancel handle: pass it to a long operation, call cloudlet_cancel_trigger()
 * from any thread (or a signal handler) to make it stop at its next check
 * point and undo what it did. One handle may serve several operations.
 */
typedef struct cloudlet_cancel cloudlet_cancel;

CLOUDLET_API cloudlet_status cloudlet_cancel_new(cloudlet_cancel **out);
/** Async-signal-safe and thread-safe. */
CLOUDLET_API cloudlet_status cloudlet_cancel_trigger(cloudlet_cancel *cancel);
/** 1 once triggered, else 0 (also 0 for NULL). Thread-safe. */
CLOUDLET_API int cloudlet_cancel_is_triggered(const cloudlet_cancel *cancel);
/** Free a cancel handle; no operation may still be using it. NULL is ignored. */
CLOUDLET_API void cloudlet_cancel_free(cloudlet_cancel *cancel);

/* ------------------------------------------------------------------------ */
/* Context                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum cloudlet_log_level {
	CLOUDLET_LOG_ERROR = 0,
	CLOUDLET_LOG_WARN = 1,
	CLOUDLET_LOG_INFO = 2,
	CLOUDLET_LOG_DEBUG = 3
} cloudlet_log_level;

/**
 * Receives the library's log lines at or below the context's log level.
 * May be called from worker threads, possibly concurrently: make it
 * thread-safe. `message` is valid only during the call.
 */
typedef void (*cloudlet_log_cb)(cloudlet_log_level level, const char *message,
                                void *userdata);

/** Options for cloudlet_ctx_new(). */
typedef struct cloudlet_ctx_options {
	unsigned int version;       /**< CLOUDLET_CTX_OPTIONS_VERSION */
	const char *libvirt_uri;    /**< NULL: "qemu:///system" as root, else "qemu:///session" */
	const char *store_dir;      /**< NULL: /var/lib/cloudlet as root, else $XDG_DATA_HOME/cloudlet */
	unsigned int worker_threads;/**< 0: one per online CPU */
	const char *cpu_model;      /**< the CPU model enforced on guests; NULL: "core2duo" */
	cloudlet_log_cb log_cb;     /**< NULL: no logging */
	void *log_userdata;
	cloudlet_log_level log_level; /**< most verbose level passed to log_cb */
} cloudlet_ctx_options;

#define CLOUDLET_CTX_OPTIONS_VERSION 1
#define CLOUDLET_CTX_OPTIONS_INIT \
	{ CLOUDLET_CTX_OPTIONS_VERSION, NULL, NULL, 0, NULL, NULL, NULL, CLOUDLET_LOG_WARN }

/** Initialise `opts` to the defaults of struct version `version`. */
CLOUDLET_API cloudlet_status cloudlet_ctx_options_init(cloudlet_ctx_options *opts,
                                                       unsigned int version);

/** A library context: configuration plus a lazily opened libvirt connection. */
typedef struct cloudlet_ctx cloudlet_ctx;

/**
 * Create a context. `opts` may be NULL for all defaults. Nothing is
 * connected yet: the libvirt connection opens on first use, so this only
 * fails on invalid options. Free with cloudlet_ctx_free().
 */
CLOUDLET_API cloudlet_status cloudlet_ctx_new(cloudlet_ctx **out,
                                              const cloudlet_ctx_options *opts);

/** Free a context. NULL is ignored. No call may be using it. */
CLOUDLET_API void cloudlet_ctx_free(cloudlet_ctx *ctx);

/**
 * The context's effective settings, resolved from defaults. The strings
 * belong to the context. Any out-parameter may be NULL.
 */
CLOUDLET_API cloudlet_status cloudlet_ctx_settings(const char **libvirt_uri,
                                                   const char **store_dir,
                                                   const char **cpu_model,
                                                   unsigned int *worker_threads,
                                                   const cloudlet_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* Doctor: what this host can do                                            */
/* ------------------------------------------------------------------------ */

/** Options for cloudlet_doctor(). */
typedef struct cloudlet_doctor_options {
	unsigned int version;       /**< CLOUDLET_DOCTOR_OPTIONS_VERSION */
	int boot_probe;             /**< 1 (default): prove each virt type by booting a kernel; 0: capabilities only */
	const char *probe_kernel;   /**< kernel image for the boot probe; NULL: $CLOUDLET_PROBE_KERNEL, then /boot/vmlinuz-$(uname -r), /boot/vmlinuz */
	unsigned int probe_timeout_ms; /**< per virt type: how long the console may stay silent (the whole boot may take 4x); 0: 20000 */
	cloudlet_progress_cb progress;
	void *progress_userdata;
	cloudlet_cancel *cancel;    /**< may be NULL */
} cloudlet_doctor_options;

#define CLOUDLET_DOCTOR_OPTIONS_VERSION 1
#define CLOUDLET_DOCTOR_OPTIONS_INIT \
	{ CLOUDLET_DOCTOR_OPTIONS_VERSION, 1, NULL, 0, NULL, NULL, NULL }

CLOUDLET_API cloudlet_status cloudlet_doctor_options_init(cloudlet_doctor_options *opts,
                                                          unsigned int version);

/** What one libvirt virt type ("kvm", "qemu" = TCG) can do here. */
typedef struct cloudlet_virt_report {
	unsigned int version;       /**< fields below exist from version 1 */
	const char *virt_type;      /**< "kvm" or "qemu" */
	cloudlet_tristate offered;  /**< libvirt offers it (domain capabilities) */
	cloudlet_tristate usable;   /**< a guest really runs under it */
	const char *usable_detail;  /**< how that was decided, or why not */
	double probe_seconds;       /**< wall time of the boot probe, 0 if none */
	const char *emulator;       /**< QEMU binary; "" if unknown */
	const char *machine;        /**< canonical machine type behind "pc"; "" if unknown */
	cloudlet_tristate cpu_model_usable; /**< the enforced CPU model can be provided */
	const char *cpu_model_detail;/**< QEMU's verdict and libvirt's comparison */
} cloudlet_virt_report;

/** The host report. Read-only; free with cloudlet_host_report_free(). */
typedef struct cloudlet_host_report {
	unsigned int version;       /**< fields below exist from version 1; early_start* from 2 */
	const char *libvirt_uri;    /**< the connection's canonical URI */
	const char *libvirt_version;/**< "9.0.0" (the daemon's library) */
	const char *qemu_version;   /**< "7.2.22"; "" if unknown */
	const char *hostname;
	const char *cpu_model;      /**< the enforced CPU model */
	cloudlet_tristate kvm_device; /**< /dev/kvm opens and creates a VM */
	const char *kvm_device_detail;
	size_t virt_count;
	const cloudlet_virt_report *virt; /**< virt_count entries: "kvm", "qemu" */
	const char *preferred_virt_type;  /**< "kvm" if usable, else "qemu" if usable, else "" */
	cloudlet_tristate acpi_hotplug;   /**< NIC hot-(un)plug via ACPI is possible */
	const char *acpi_hotplug_detail;
	const char *store_dir;
	cloudlet_tristate store_writable;
	uint64_t store_free_bytes;  /**< free space for the store (0 if unknown) */
	uint64_t store_total_bytes;
	const char *probe_kernel;   /**< kernel used for boot probes; "" if none */
	/* version 2 */
	cloudlet_tristate early_start; /**< QEMU may use userfaultfd here: CLOUDLET_SYNTHESIS_EARLY_START works */
	const char *early_start_detail;/**< what decided it, and the way to allow it if not */
} cloudlet_host_report;

#define CLOUDLET_HOST_REPORT_VERSION 2

/**
 * Examine the host: libvirt and QEMU versions, whether KVM really runs a
 * guest (by booting a kernel, not just opening /dev/kvm) or only TCG does,
 * whether the enforced CPU model is usable per virt type, ACPI hot-plug,
 * and the store. Takes seconds with boot_probe (probes run in parallel).
 * May run concurrently on one context.
 */
CLOUDLET_API cloudlet_status cloudlet_doctor(cloudlet_host_report **out,
                                             cloudlet_ctx *ctx,
                                             const cloudlet_doctor_options *opts);

/** Free a report from cloudlet_doctor(). NULL is ignored. */
CLOUDLET_API void cloudlet_host_report_free(cloudlet_host_report *report);

/* ------------------------------------------------------------------------ */
/* Snapshots: libvirt save images and QEMU migration streams                */
/* ------------------------------------------------------------------------ */

/** Options for reading a snapshot (progress counts bytes read). */
typedef struct cloudlet_snapshot_options {
	unsigned int version;       /**< CLOUDLET_SNAPSHOT_OPTIONS_VERSION */
	cloudlet_progress_cb progress;
	void *progress_userdata;
	cloudlet_cancel *cancel;    /**< may be NULL */
} cloudlet_snapshot_options;

#define CLOUDLET_SNAPSHOT_OPTIONS_VERSION 1
#define CLOUDLET_SNAPSHOT_OPTIONS_INIT { CLOUDLET_SNAPSHOT_OPTIONS_VERSION, NULL, NULL, NULL }

CLOUDLET_API cloudlet_status cloudlet_snapshot_options_init(cloudlet_snapshot_options *opts,
                                                            unsigned int version);

/** One RAM block of a snapshot ("pc.ram", "vga.vram", ROMs ...). */
typedef struct cloudlet_ram_block_info {
	unsigned int version;       /**< fields below exist from version 1 */
	const char *name;
	uint64_t length;            /**< bytes */
	uint64_t pages;             /**< 4 KiB pages */
	uint64_t zero_pages;        /**< latest version is all zero */
	uint64_t data_pages;        /**< latest version carries data */
} cloudlet_ram_block_info;

/** What a snapshot file holds. Free with cloudlet_snapshot_info_free(). */
typedef struct cloudlet_snapshot_info {
	unsigned int version;       /**< fields below exist from version 1 */
	const char *path;
	const char *format;         /**< "libvirt-save" or "qemu-stream" */
	unsigned int image_version; /**< libvirt save image version; 0 for a bare stream */
	int complete;               /**< 0 if libvirt was still writing it ("Part" magic) */
	int was_running;            /**< the domain was running when saved */
	unsigned int stream_version;/**< QEMU stream version (3) */
	const char *machine_type;   /**< "pc-i440fx-7.2" */
	const char *domain_name;    /**< "" for a bare stream */
	const char *domain_uuid;
	size_t block_count;
	const cloudlet_ram_block_info *blocks;
	uint64_t total_pages, zero_pages, data_pages;
	uint64_t page_records;      /**< page records read, repeats of live passes included */
	uint64_t ram_sections;
	uint64_t file_bytes;
	uint64_t device_state_bytes;/**< non-RAM state, kept opaque */
	size_t device_count;        /**< device sections, when they could be located */
	const char *const *devices; /**< "name/instance", stream order */
	int devices_split;          /**< 1 if every device section was located exactly */
} cloudlet_snapshot_info;

#define CLOUDLET_SNAPSHOT_INFO_VERSION 1

/**
 * Reads a libvirt save image (`virsh save`) or a bare QEMU migration stream
 * in one streaming pass and describes it. Malformed input gives
 * CLOUDLET_E_CORRUPT with the offset and the problem in the message;
 * valid features we do not handle (compressed images, XBZRLE, postcopy ...)
 * give CLOUDLET_E_UNSUPPORTED. May run concurrently on one context.
 */
CLOUDLET_API cloudlet_status cloudlet_snapshot_inspect(cloudlet_snapshot_info **out,
                                                       cloudlet_ctx *ctx, const char *path,
                                                       const cloudlet_snapshot_options *opts);

/** Free a cloudlet_snapshot_info. NULL is ignored. */
CLOUDLET_API void cloudlet_snapshot_info_free(cloudlet_snapshot_info *info);

/** What snapshot capture writes. */
typedef enum cloudlet_capture_format {
	CLOUDLET_CAPTURE_SAVE_IMAGE = 0,   /**< a libvirt save image (virsh restore resumes it) */
	CLOUDLET_CAPTURE_MEMORY_IMAGE = 1  /**< libcloudlet's memory image (docs/formats/memory-image.md) */
} cloudlet_capture_format;

/** Options for cloudlet_snapshot_capture(). */
typedef struct cloudlet_capture_options {
	unsigned int version;       /**< CLOUDLET_CAPTURE_OPTIONS_VERSION */
	int live;                   /**< 1: the VM runs until QEMU's final pass; 0: paused throughout */
	int stop;                   /**< 1: shut the domain off after a successful capture */
	cloudlet_capture_format format;
	cloudlet_progress_cb progress; /**< phases "capture" (RAM bytes sent by QEMU), "write" (bytes) */
	void *progress_userdata;
	cloudlet_cancel *cancel;    /**< may be NULL */
} cloudlet_capture_options;

#define CLOUDLET_CAPTURE_OPTIONS_VERSION 1
#define CLOUDLET_CAPTURE_OPTIONS_INIT \
	{ CLOUDLET_CAPTURE_OPTIONS_VERSION, 0, 0, CLOUDLET_CAPTURE_SAVE_IMAGE, NULL, NULL, NULL }

CLOUDLET_API cloudlet_status cloudlet_capture_options_init(cloudlet_capture_options *opts,
                                                           unsigned int version);

/** What a capture did. Free with cloudlet_capture_result_free(). */
typedef struct cloudlet_capture_result {
	unsigned int version;       /**< fields below exist from version 1 */
	const char *path;
	const char *domain_name;
	const char *domain_uuid;
	int was_running;            /**< the run state before the capture */
	const char *final_state;    /**< "running", "paused" or "shut off" */
	uint64_t stream_bytes;      /**< bytes of migration stream QEMU sent */
	uint64_t page_records;      /**< page versions received, repeats of live passes included */
	uint64_t ram_sections;
	uint64_t passes;            /**< QEMU's passes over RAM (dirty syncs) */
	uint64_t total_pages;
	uint64_t data_pages;        /**< pages holding data in the output (the rest are zero) */
	uint64_t file_bytes;        /**< size of the output file */
	double seconds;             /**< the whole operation */
	double downtime_ms;         /**< how long QEMU kept the VM paused for the final pass */
} cloudlet_capture_result;

#define CLOUDLET_CAPTURE_RESULT_VERSION 1

/**
 * Captures the memory and device state of a running or paused domain (by
 * name or UUID) into `path`, by migrating it into a socket the library owns
 * and parsing the stream as it arrives. Nothing on the host is loosened:
 * QEMU gets the socket through libvirt. With `live`, the VM keeps running
 * through QEMU's iterative passes and is paused only for the final one;
 * pages sent more than once are kept in their final version. Disks are not
 * copied: the image refers to the domain's disks as they are.
 *
 * Afterwards the domain is in its prior run state, or shut off with `stop`.
 * On failure or cancel, it is back in its prior run state and `path` is
 * untouched (the output appears by rename only when complete).
 * `out` may be NULL. Errors: CLOUDLET_E_NOT_FOUND, CLOUDLET_E_INVALID_ARG
 * (domain not running or paused), CLOUDLET_E_BUSY (already migrating),
 * CLOUDLET_E_LIBVIRT, CLOUDLET_E_CORRUPT/UNSUPPORTED (a stream we cannot
 * read), CLOUDLET_E_IO, CLOUDLET_E_CANCELLED.
 */
CLOUDLET_API cloudlet_status cloudlet_snapshot_capture(cloudlet_capture_result **out,
                                                       cloudlet_ctx *ctx, const char *domain,
                                                       const char *path,
                                                       const cloudlet_capture_options *opts);

/** Free a cloudlet_capture_result. NULL is ignored. */
CLOUDLET_API void cloudlet_capture_result_free(cloudlet_capture_result *result);

/* ------------------------------------------------------------------------ */
/* Base VMs: create, store, verify, export/import, resume                   */
/* ------------------------------------------------------------------------ */

/** One stored file of a base. (An array element: it never grows; what is
 *  added per part is an array in cloudlet_base_info.) */
typedef struct cloudlet_base_part {
	unsigned int version;       /**< fields below exist from version 1 */
	const char *file;           /**< name in the base folder */
	const char *role;           /**< "memory", "memory-index", "disk", "disk-index", "disk-sector-index", "domain-xml", "kernel", "initrd" */
	const char *target;         /**< disks and their indexes: guest device ("vda"); else "" */
	uint64_t size;              /**< apparent size in bytes */
	const char *sha256;         /**< the part's content digest: a SHA-256 hash tree, 64 hex digits (docs/formats/base.md) */
} cloudlet_base_part;

/** A base VM. Free with cloudlet_base_info_free(). */
typedef struct cloudlet_base_info {
	unsigned int version;       /**< fields below exist from version 1 */
	const char *id;             /**< SHA-256 of its manifest, which lists every part's size and digest */
	const char *name;
	const char *created;        /**< ISO 8601, UTC */
	const char *source_domain;  /**< the domain it was made from; "" if imported */
	const char *dir;            /**< its folder in the store */
	const char *virt_type;      /**< created under "qemu" or "kvm" */
	const char *machine;
	const char *cpu_model;
	uint64_t memory_bytes;
	uint64_t total_bytes;       /**< all parts, apparent size (sparse disks count whole) */
	size_t part_count;
	const cloudlet_base_part *parts;
	const char *status;         /**< "ok", "corrupt" or "unverified" (list does not verify) */
	const char *problem;        /**< what is corrupt; "" otherwise */
	double capture_seconds, disk_seconds, hash_seconds, total_seconds; /**< of its creation; 0 if imported */
	/* version 2 */
	uint64_t allocated_bytes;   /**< disk space all parts take (st_blocks x 512) */
	const uint64_t *part_allocated_bytes; /**< part_count entries: each part's allocated bytes */
	const char *imported_from;  /**< the package file it was imported from; "" if created here */
} cloudlet_base_info;

#define CLOUDLET_BASE_INFO_VERSION 2

/** Options for the base calls (each uses the fields that apply). */
typedef struct cloudlet_base_options {
	unsigned int version;       /**< CLOUDLET_BASE_OPTIONS_VERSION */
	const char *name;           /**< create/import: the base's name (NULL: source domain's / package's) */
	int stop;                   /**< create: shut the source domain off afterwards */
	int full_verify;            /**< show: re-hash every part, not only those whose stamp changed */
	cloudlet_progress_cb progress;
	void *progress_userdata;
	cloudlet_cancel *cancel;
} cloudlet_base_options;

#define CLOUDLET_BASE_OPTIONS_VERSION 1
#define CLOUDLET_BASE_OPTIONS_INIT { CLOUDLET_BASE_OPTIONS_VERSION, NULL, 0, 0, NULL, NULL, NULL }

CLOUDLET_API cloudlet_status cloudlet_base_options_init(cloudlet_base_options *opts, unsigned int version);

/**
 * Makes a base VM from a running or paused domain: pauses it, captures its
 * memory, copies its disks (raw) while it is paused, indexes and hashes
 * everything, and adds the base to the context's store. The domain must run
 * the enforced CPU model with ACPI on (CLOUDLET_E_INVALID_ARG says what to
 * change). Afterwards the domain is back in its prior state, or shut off
 * with `stop`. CLOUDLET_E_EXISTS if the name is taken.
 */
CLOUDLET_API cloudlet_status cloudlet_base_create(cloudlet_base_info **out, cloudlet_ctx *ctx,
                                                  const char *domain, const cloudlet_base_options *opts);

/**
 * Verifies a base (by ID, name or ID prefix of >= 8 digits) and describes
 * it. Corruption is not an error status: `status` is "corrupt" and
 * `problem` names the file. Parts whose size/mtime/inode stamp is unchanged
 * since the last check are trusted unless `full_verify`.
 */
CLOUDLET_API cloudlet_status cloudlet_base_show(cloudlet_base_info **out, cloudlet_ctx *ctx,
                                                const char *base, const cloudlet_base_options *opts);

/** The bases in the store (not verified). */
typedef struct cloudlet_base_list {
	unsigned int version;       /**< fields below exist from version 1 */
	size_t count;
	const cloudlet_base_info *const *bases;
} cloudlet_base_list;

CLOUDLET_API cloudlet_status cloudlet_base_list_get(cloudlet_base_list **out, cloudlet_ctx *ctx);
CLOUDLET_API void cloudlet_base_list_free(cloudlet_base_list *list);

/** Removes a base from the store. Instances resumed from it must be gone. */
CLOUDLET_API cloudlet_status cloudlet_base_remove(cloudlet_ctx *ctx, const char *base);

/** Writes a verified base as one package file (docs/formats/base-package.md). */
CLOUDLET_API cloudlet_status cloudlet_base_export(cloudlet_ctx *ctx, const char *base, const char *path,
                                                  const cloudlet_base_options *opts);

/** Reads a package into the store, verifying every part; on any mismatch
 *  nothing is left behind (CLOUDLET_E_CORRUPT). */
CLOUDLET_API cloudlet_status cloudlet_base_import(cloudlet_base_info **out, cloudlet_ctx *ctx,
                                                  const char *path, const cloudlet_base_options *opts);

/**
 * Describes the base a package file holds without importing it: its ID,
 * name, parts and sizes, from the package's header and manifest (the
 * manifest is checked to hash to the ID). The parts are not read:
 * `status` is "unverified", and only cloudlet_base_import() verifies them.
 * `imported_from` is `path`; allocated sizes are 0. For clients that
 * publish a package (e.g. into Glance) and need its base ID.
 */
CLOUDLET_API cloudlet_status cloudlet_base_package_inspect(cloudlet_base_info **out, cloudlet_ctx *ctx,
                                                           const char *path);

CLOUDLET_API void cloudlet_base_info_free(cloudlet_base_info *info);

/** Options for cloudlet_base_resume(). */
typedef struct cloudlet_resume_options {
	unsigned int version;       /**< CLOUDLET_RESUME_OPTIONS_VERSION */
	const char *name;           /**< NULL: "<base name>-<8 hex digits>" */
	const char *virt_type;      /**< NULL: the virt type the base was created under */
	cloudlet_progress_cb progress;
	void *progress_userdata;
	cloudlet_cancel *cancel;
	/* version 2 */
	const char *uuid;           /**< the new domain's UUID ("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", any case);
	                                 NULL: a random one. CLOUDLET_E_EXISTS if a domain has it */
	const char *mac;            /**< version 2: the first fresh NIC's MAC; NULL: a new one from libvirt */
	const char *network;        /**< version 2: libvirt network of the fresh NICs; NULL: the base's */
	const char *nic_xml;        /**< version 2: a whole <interface> element for the first fresh NIC */
} cloudlet_resume_options;

#define CLOUDLET_RESUME_OPTIONS_VERSION 2
#define CLOUDLET_RESUME_OPTIONS_INIT { CLOUDLET_RESUME_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL }

CLOUDLET_API cloudlet_status cloudlet_resume_options_init(cloudlet_resume_options *opts, unsigned int version);

/** A running instance of a base. Free with cloudlet_instance_info_free(). */
typedef struct cloudlet_instance_info {
	unsigned int version;       /**< fields below exist from version 1 */
	const char *name;
	const char *uuid;
	const char *base_id;
	const char *dir;            /**< its private files (disk overlays, sockets, logs) */
	const char *virt_type;
	size_t nic_count;           /**< NICs replaced after the resume */
	const char *const *macs;    /**< their new MAC addresses */
	const char *const *old_macs;/**< the base's MAC addresses they replaced */
	double seconds, restore_seconds, nic_seconds;
} cloudlet_instance_info;

/**
 * Starts a new, independent instance of a base: verifies the base, checks
 * that the base's CPU model is usable under the virt type (CLOUDLET_E_HOST
 * naming the missing features, before anything is created), gives it
 * copy-on-write disks over the base (whose files are never written), a
 * fresh name and UUID, its own host-side device paths, restores the base's
 * memory and replaces every NIC by a new one with a new MAC.
 */
CLOUDLET_API cloudlet_status cloudlet_base_resume(cloudlet_instance_info **out, cloudlet_ctx *ctx,
                                                  const char *base, const cloudlet_resume_options *opts);

CLOUDLET_API void cloudlet_instance_info_free(cloudlet_instance_info *info);

/**
 * Removes the private files (disk layers, logs) of the instance `name` — one
 * resumed, synthesized or received here — once its domain no longer runs.
 * Instances are transient domains whose folders outlive them on purpose (the
 * disk layers may hold work). CLOUDLET_E_NOT_FOUND without such a folder,
 * CLOUDLET_E_BUSY while a domain of that name is active.
 */
CLOUDLET_API cloudlet_status cloudlet_instance_remove(cloudlet_ctx *ctx, const char *name);

/* ------------------------------------------------------------------------ */
/* VM overlays                                                              */
/* ------------------------------------------------------------------------ */

/** Where a chunk of the launch VM comes from (index into the count arrays). */
enum {
	CLOUDLET_CHUNK_UNCHANGED = 0,   /**< same as the base at the same position: not in the overlay */
	CLOUDLET_CHUNK_ZERO = 1,
	CLOUDLET_CHUNK_BASE_MEMORY = 2, /**< equal to a base memory page elsewhere */
	CLOUDLET_CHUNK_BASE_DISK = 3,   /**< equal to 4 KiB of a base disk (512-byte aligned) */
	CLOUDLET_CHUNK_SELF = 4,        /**< equal to an earlier chunk of the overlay */
	CLOUDLET_CHUNK_DATA = 5,        /**< stored (compressed) in the overlay */
	CLOUDLET_CHUNK_DELTA = 6,       /**< stored as XOR against the base chunk at the same position, or against
	                                     an earlier chunk of the overlay at a byte shift (see *_shifted) */
	CLOUDLET_CHUNK_KINDS = 7
};

/** Options for overlay calls. */
typedef struct cloudlet_overlay_options {
	unsigned int version;       /**< CLOUDLET_OVERLAY_OPTIONS_VERSION */
	const char *codec;          /**< create: "zstd" (NULL), "lzma", "none" or "auto" (the first segment decides) */
	int level;                  /**< create: codec level; -1: the codec's default */
	int stop;                   /**< create: shut the domain off afterwards */
	unsigned int threads;       /**< create: segments compressed at once; 0: the context's worker_threads */
	cloudlet_progress_cb progress;
	void *progress_userdata;
	cloudlet_cancel *cancel;
} cloudlet_overlay_options;

#define CLOUDLET_OVERLAY_OPTIONS_VERSION 1
#define CLOUDLET_OVERLAY_OPTIONS_INIT { CLOUDLET_OVERLAY_OPTIONS_VERSION, NULL, -1, 0, 0, NULL, NULL, NULL }

CLOUDLET_API cloudlet_status cloudlet_overlay_options_init(cloudlet_overlay_options *opts, unsigned int version);

/** What an overlay holds. Free with cloudlet_overlay_info_free(). */
typedef struct cloudlet_overlay_info {
	unsigned int version;       /**< fields below exist from version 1 */
	const char *path;
	const char *base_id;        /**< the base it needs */
	const char *codec;
	const char *domain;         /**< create: the source domain; "" when read from a file */
	uint64_t memory_chunks;     /**< 4 KiB pages of the launch VM */
	uint64_t disk_chunks;       /**< 4 KiB chunks of its disks */
	uint64_t memory[CLOUDLET_CHUNK_KINDS]; /**< memory chunks per CLOUDLET_CHUNK_*; they add up to memory_chunks */
	uint64_t disk[CLOUDLET_CHUNK_KINDS];   /**< disk chunks per CLOUDLET_CHUNK_*; they add up to disk_chunks */
	uint64_t segments;
	uint64_t payload_bytes;     /**< stored chunks before compression */
	uint64_t stored_bytes;      /**< after compression */
	uint64_t file_bytes;
	uint64_t device_state_bytes;
	double capture_seconds, disk_seconds, total_seconds; /**< create only */
	/* version 2 */
	uint64_t memory_shifted;    /**< of memory[CLOUDLET_CHUNK_DELTA]: deltas against an earlier chunk at a byte shift */
	uint64_t disk_shifted;      /**< of disk[CLOUDLET_CHUNK_DELTA]: the same for disk chunks */
} cloudlet_overlay_info;

/**
 * Makes an overlay of a domain resumed from a base of the context's store
 * (cloudlet_base_resume) and customised: pauses it, deduplicates its memory
 * page by page while QEMU migrates it into the library, then the clusters
 * its disks' copy-on-write layers hold, and writes `path`
 * (docs/formats/overlay.md). The domain is then back in its prior state, or
 * shut off with `stop`. `path` appears only when complete.
 */
CLOUDLET_API cloudlet_status cloudlet_overlay_create(cloudlet_overlay_info **out, cloudlet_ctx *ctx,
                                                     const char *domain, const char *path,
                                                     const cloudlet_overlay_options *opts);

/** Reads and verifies a whole overlay file and counts what it holds. */
CLOUDLET_API cloudlet_status cloudlet_overlay_inspect(cloudlet_overlay_info **out, cloudlet_ctx *ctx,
                                                      const char *path, const cloudlet_overlay_options *opts);

CLOUDLET_API void cloudlet_overlay_info_free(cloudlet_overlay_info *info);

/* ------------------------------------------------------------------------ */
/* VM synthesis                                                             */
/* ------------------------------------------------------------------------ */

/** Options for cloudlet_synthesize(). */
typedef struct cloudlet_synthesis_options {
	unsigned int version;       /**< CLOUDLET_SYNTHESIS_OPTIONS_VERSION */
	const char *base;           /**< NULL: the base the overlay names; else an ID or name that must be it */
	const char *name;           /**< NULL: "<base name>-<8 hex digits>" */
	const char *virt_type;      /**< NULL: the virt type the base was created under */
	const char *mac;            /**< the first fresh NIC's MAC; NULL: a new one from libvirt */
	const char *network;        /**< libvirt network of the fresh NICs; NULL: the base's */
	const char *nic_xml;        /**< a whole <interface> element for the first fresh NIC; NULL: the base's */
	unsigned int threads;       /**< segments decompressed at once; 0: the context's worker_threads */
	const char *ca_file;        /**< https: CA bundle; NULL: the system's. Peers are always verified */
	uint64_t max_download_bytes;/**< URL overlays: refuse larger bodies; 0: 64 GiB */
	unsigned int stall_timeout_seconds; /**< URL overlays: give up after this long below 1 KiB/s; 0: 30 */
	cloudlet_progress_cb progress;
	void *progress_userdata;
	cloudlet_cancel *cancel;
	/* version 2 */
	const char *uuid;           /**< the new domain's UUID ("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", any case);
	                                 NULL: a random one. CLOUDLET_E_EXISTS if a domain has it */
	/* version 3 */
	unsigned int flags;         /**< CLOUDLET_SYNTHESIS_* flags; 0: none */
} cloudlet_synthesis_options;

/** Synthesis flags. */
enum {
	/** Early start (docs/early-start.md): the VM runs as soon as QEMU has
	 *  loaded its device state, its memory streaming in behind it by
	 *  postcopy, the pages it touches first. Needs a host where QEMU may use
	 *  userfaultfd (`cloudlet doctor` says; CLOUDLET_E_HOST up front if not). */
	CLOUDLET_SYNTHESIS_EARLY_START = 1u << 0
};

#define CLOUDLET_SYNTHESIS_OPTIONS_VERSION 3
#define CLOUDLET_SYNTHESIS_OPTIONS_INIT \
	{ CLOUDLET_SYNTHESIS_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, 0, 0, NULL, NULL, NULL, NULL, 0 }

CLOUDLET_API cloudlet_status cloudlet_synthesis_options_init(cloudlet_synthesis_options *opts, unsigned int version);

/** A synthesized VM. Free with cloudlet_synthesis_info_free(). */
typedef struct cloudlet_synthesis_info {
	unsigned int version;       /**< fields below exist from version 1; the early-start ones from 2 */
	const char *name;
	const char *uuid;
	const char *base_id;
	const char *dir;            /**< its private files (disk layers, sockets, logs) */
	const char *virt_type;
	const char *source;         /**< the overlay's path or URL */
	size_t nic_count;           /**< NICs replaced after the restore */
	const char *const *macs;    /**< their new MAC addresses */
	const char *const *old_macs;/**< the launch VM's MAC addresses they replaced */
	uint64_t overlay_bytes;     /**< bytes of overlay read */
	uint64_t memory_chunks;     /**< 4 KiB pages of the launch VM */
	uint64_t disk_chunks;       /**< 4 KiB chunks of its disks */
	uint64_t records[CLOUDLET_CHUNK_KINDS]; /**< overlay records per CLOUDLET_CHUNK_* ([0] unused; shifted deltas count as DELTA) */
	uint64_t disk_layer_bytes;  /**< size of the qcow2 layers written */
	/** Wall-clock phases: time spent waiting for overlay bytes; decompressing
	 *  (summed over threads, overlapping the fetch); placing chunks; the whole
	 *  fetch-decompress-apply pipeline; libvirt's restore (overlapping the
	 *  memory stream's generation); the NIC swap; everything. */
	double fetch_seconds, decompress_seconds, apply_seconds, read_seconds;
	double restore_seconds, nic_seconds, total_seconds;
	/* version 2 */
	int early_start;            /**< 1: restored by postcopy (CLOUDLET_SYNTHESIS_EARLY_START) */
	double running_seconds;     /**< early start: from the call until the VM ran; else 0 */
	uint64_t demand_requests;   /**< early start: page requests from QEMU while memory streamed in */
	uint64_t demand_pages;      /**< early start: pages sent because the guest touched them first */
	uint64_t background_pages;  /**< early start: pages sent in order behind them */
	uint64_t held_pages;        /**< early start: pages the guest touched before the overlay had delivered them (they waited for it) */
} cloudlet_synthesis_info;

/**
 * Synthesizes the launch VM of an overlay (a file path or an http(s) URL,
 * streamed) on this cloudlet and leaves it running: checks the overlay's
 * header against this cloudlet first — its base present and intact (and
 * equal to `base` if given: CLOUDLET_E_INVALID_ARG otherwise; a missing base
 * is CLOUDLET_E_NOT_FOUND), the base's CPU model usable (CLOUDLET_E_HOST),
 * the name free, enough disk space — and creates nothing if any fails. Then
 * rebuilds the disks as qcow2 layers over the base's and the memory from
 * base pages and overlay chunks, restores the VM through libvirt, and
 * replaces its NICs by fresh ones (docs/synthesis.md). Any later failure
 * (a corrupt or truncated overlay: CLOUDLET_E_CORRUPT; network: CLOUDLET_E_IO
 * or CLOUDLET_E_TIMEOUT; cancellation) removes the domain and every file it
 * created. Several syntheses may run at once on one context. `out` may be NULL.
 */
CLOUDLET_API cloudlet_status cloudlet_synthesize(cloudlet_synthesis_info **out, cloudlet_ctx *ctx, const char *overlay,
                                                 const cloudlet_synthesis_options *opts);

CLOUDLET_API void cloudlet_synthesis_info_free(cloudlet_synthesis_info *info);

/* ------------------------------------------------------------------------ */
/* VM handoff                                                               */
/* ------------------------------------------------------------------------ */

/** A listening socket a destination cloudlet receives handoffs on. */
typedef struct cloudlet_handoff_listener cloudlet_handoff_listener;

/** How a handoff connection is protected (docs/security.md "Handoff"). */
typedef enum cloudlet_handoff_security {
	/** TLS 1.3, both sides authenticated by an external PSK derived from
	 *  the token file (the default: no certificates to manage). */
	CLOUDLET_HANDOFF_TLS_PSK = 0,
	/** TLS 1.3, both sides authenticated by X.509 certificates of one CA,
	 *  in QEMU's migration layout in `tls_dir`: ca-cert.pem (and optionally
	 *  ca-crl.pem), server-cert.pem + server-key.pem on the destination,
	 *  client-cert.pem + client-key.pem on the source; the source checks the
	 *  destination's certificate against the host it connects to. */
	CLOUDLET_HANDOFF_TLS_X509 = 1,
	/** No encryption: frames authenticated by the token, the VM's memory
	 *  readable by anyone on the path. Only for networks the operator
	 *  trusts (a VPN, one host). */
	CLOUDLET_HANDOFF_PLAINTEXT_UNSAFE = 2
} cloudlet_handoff_security;

/** Options for the handoff calls (docs/handoff.md). */
typedef struct cloudlet_handoff_options {
	unsigned int version;       /**< CLOUDLET_HANDOFF_OPTIONS_VERSION */
	const char *token_file;     /**< the secret both cloudlets hold (>= 32 bytes, mode 0600); required unless
	                                 security is CLOUDLET_HANDOFF_TLS_X509 */
	unsigned int timeout_seconds; /**< silence from the peer that ends the handoff; 0: 60 */
	const char *codec;          /**< send: "auto" (NULL: chosen from the measured link and CPU), "zstd", "lzma" or "none" */
	int level;                  /**< send: codec level with a fixed codec; -1: the codec's default */
	const char *name;           /**< receive: the VM's name here; NULL: the source's */
	const char *virt_type;      /**< receive: NULL: the base's */
	const char *mac;            /**< receive: the first fresh NIC's MAC */
	const char *network;        /**< receive: libvirt network of the fresh NICs */
	const char *nic_xml;        /**< receive: the first fresh NIC as an <interface> element */
	cloudlet_progress_cb progress;
	void *progress_userdata;
	cloudlet_cancel *cancel;
	/* version 2 */
	const char *uuid;           /**< receive: the VM's UUID here ("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", any case);
	                                 NULL: a random one. CLOUDLET_E_EXISTS if a domain has it */
	/* version 3 */
	unsigned int security;      /**< a cloudlet_handoff_security; 0: CLOUDLET_HANDOFF_TLS_PSK */
	const char *tls_dir;        /**< CLOUDLET_HANDOFF_TLS_X509: the certificate directory */
	unsigned int handshake_timeout_seconds; /**< connect -> authenticated, separate from timeout_seconds
	                                             (receive: a peer that takes longer is dropped); 0: 10 */
	/* version 4 */
	unsigned int resume_window_seconds; /**< a connection that drops (or falls silent for timeout_seconds)
	                                         while the VM still runs at the source is replaced within this
	                                         time and the transfer goes on where it was (send: reconnecting;
	                                         receive: waiting for the source); 0: no resume, the handoff
	                                         fails and the source runs on. Default (_INIT) 30 */
} cloudlet_handoff_options;

#define CLOUDLET_HANDOFF_OPTIONS_VERSION 4
#define CLOUDLET_HANDOFF_OPTIONS_INIT \
	{ CLOUDLET_HANDOFF_OPTIONS_VERSION, NULL, 0, NULL, -1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
	  CLOUDLET_HANDOFF_TLS_PSK, NULL, 0, 30 }

CLOUDLET_API cloudlet_status cloudlet_handoff_options_init(cloudlet_handoff_options *opts, unsigned int version);

/** What a handoff did. Free with cloudlet_handoff_info_free(). */
typedef struct cloudlet_handoff_info {
	unsigned int version;       /**< fields below exist from version 1 */
	const char *domain;         /**< send: the source domain (now gone); receive: the VM here */
	const char *uuid;           /**< the VM's UUID at the destination */
	const char *peer;           /**< the other cloudlet */
	const char *base_id;
	const char *dir;            /**< receive: the VM's files */
	size_t nic_count;
	const char *const *macs;    /**< the fresh NICs' MACs at the destination */
	uint64_t bytes_sent, bytes_received;
	uint64_t memory_items, disk_items; /**< chunks sent (received), re-sent versions included */
	uint64_t stored_items;      /**< of them, stored data (the rest were references) */
	uint64_t raw_bytes;         /**< item bytes before compression */
	uint64_t replaced;          /**< send: dirty versions replaced in the queue before they went out */
	double total_seconds;
	double downtime_seconds;    /**< send: from the source's pause to the destination's confirmation */
	double link_mbps;           /**< send: bytes sent per second while items flowed, as acknowledged */
	double drain_seconds;       /**< send: part of the downtime: the pause until the last item and the device state were sent */
	double restore_seconds;     /**< send: part of the downtime: the destination's restore (FINAL until READY) */
	const char *codec;          /**< send: the compression in use at the end, e.g. "zstd-3" */
	/* version 2 */
	unsigned int resumes;       /**< connections that dropped and were replaced (resume_window_seconds) */
	uint64_t unacked_bytes;     /**< send: item bytes not yet acknowledged when the links dropped, summed */
	uint64_t resent_bytes;      /**< send: of them, sent again on the new connections (the rest had arrived) */
} cloudlet_handoff_info;

/**
 * Moves the running VM `domain` (an instance of a base of this store) to the
 * cloudlet listening at `destination` ("HOST:PORT"), which must hold the same
 * base and token: refused before any VM state is sent otherwise
 * (CLOUDLET_E_PERMISSION for a token mismatch, the destination's status for a
 * refusal, e.g. CLOUDLET_E_NOT_FOUND without the base). Memory goes live;
 * the VM pauses only for the last pass. On success the source domain and its
 * files are gone; on any failure before the destination confirmed, the source
 * VM runs on unchanged.
 */
CLOUDLET_API cloudlet_status cloudlet_handoff_send(cloudlet_handoff_info **out, cloudlet_ctx *ctx, const char *domain,
                                                   const char *destination, const cloudlet_handoff_options *opts);

/**
 * Checks a token file as cloudlet_handoff_send()/_receive() read it: it
 * exists, only its owner may read it (no group/other permission bits), and it
 * holds at least 32 bytes after surrounding whitespace. CLOUDLET_OK, or the
 * status and message those calls would fail with (CLOUDLET_E_PERMISSION,
 * CLOUDLET_E_INVALID_ARG, CLOUDLET_E_NOT_FOUND/_IO). For a receiver to refuse
 * a bad token file before it listens, and to notice one that a rotation broke.
 */
CLOUDLET_API cloudlet_status cloudlet_handoff_token_check(const char *token_file);

/**
 * Checks `opts` as cloudlet_handoff_receive() reads them, now: the token
 * file (as cloudlet_handoff_token_check()), or the X.509 directory's files
 * loaded and the key matching its certificate. A receiver calls it before
 * it listens and between handoffs (a rotated token or certificate that is
 * unusable is this host's fault, not a peer's: retrying cannot mend it).
 */
CLOUDLET_API cloudlet_status cloudlet_handoff_receive_check(const cloudlet_handoff_options *opts);

/** Listens on `address` ("ADDR:PORT"; PORT 0 picks a free one). The context
 *  must outlive the listener. */
CLOUDLET_API cloudlet_status cloudlet_handoff_listen(cloudlet_handoff_listener **out, cloudlet_ctx *ctx,
                                                     const char *address);

/** The port a listener listens on. */
CLOUDLET_API cloudlet_status cloudlet_handoff_listener_port(const cloudlet_handoff_listener *listener,
                                                            unsigned int *port);

/** Waits for one handoff and serves it; the VM then runs here. On failure
 *  nothing of it is left on this cloudlet. Cancel through `opts->cancel`. */
CLOUDLET_API cloudlet_status cloudlet_handoff_receive(cloudlet_handoff_info **out, cloudlet_handoff_listener *listener,
                                                      const cloudlet_handoff_options *opts);

CLOUDLET_API void cloudlet_handoff_listener_free(cloudlet_handoff_listener *listener);
CLOUDLET_API void cloudlet_handoff_info_free(cloudlet_handoff_info *info);

#ifdef __cplusplus
}
#endif

#endif /* CLOUDLET_H */
