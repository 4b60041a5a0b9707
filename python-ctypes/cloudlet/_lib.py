"""Low-level ctypes mirror of include/cloudlet.h.

Every struct of the header is mirrored field by field (same order, same C
types) and every CLOUDLET_API function gets its argtypes/restype from the
FUNCTIONS table below.  Nothing here is Pythonic: see cloudlet/__init__.py.

The library is found through the environment variable CLOUDLET_LIBRARY (a
path), else by the dynamic linker's normal lookup of "libcloudlet.so.0".
"""

import ctypes
import os
from typing import Any, ClassVar, TypeVar
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_int,
                    c_size_t, c_uint, c_uint64, c_void_p)

# ---------------------------------------------------------------- constants

VERSION_MAJOR = 0  # CLOUDLET_VERSION_MAJOR of the header this mirrors
VERSION_MINOR = 1
VERSION_PATCH = 0

# cloudlet_status
OK = 0
E_INVALID_ARG = -1
E_NOMEM = -2
E_VERSION = -3
E_IO = -4
E_LIBVIRT = -5
E_NOT_FOUND = -6
E_EXISTS = -7
E_CORRUPT = -8
E_UNSUPPORTED = -9
E_HOST = -10
E_CANCELLED = -11
E_TIMEOUT = -12
E_PERMISSION = -13
E_BUSY = -14
E_INTERNAL = -99

# cloudlet_tristate
UNKNOWN = -1
NO = 0
YES = 1

# cloudlet_log_level
LOG_ERROR = 0
LOG_WARN = 1
LOG_INFO = 2
LOG_DEBUG = 3

# cloudlet_capture_format
CAPTURE_SAVE_IMAGE = 0
CAPTURE_MEMORY_IMAGE = 1

# chunk kinds (anonymous enum)
CHUNK_UNCHANGED = 0
CHUNK_ZERO = 1
CHUNK_BASE_MEMORY = 2
CHUNK_BASE_DISK = 3
CHUNK_SELF = 4
CHUNK_DATA = 5
CHUNK_DELTA = 6
CHUNK_KINDS = 7

# struct versions
CTX_OPTIONS_VERSION = 1
DOCTOR_OPTIONS_VERSION = 1
HOST_REPORT_VERSION = 2
SNAPSHOT_OPTIONS_VERSION = 1
SNAPSHOT_INFO_VERSION = 1
CAPTURE_OPTIONS_VERSION = 1
CAPTURE_RESULT_VERSION = 1
BASE_INFO_VERSION = 2
BASE_OPTIONS_VERSION = 1
RESUME_OPTIONS_VERSION = 2
OVERLAY_OPTIONS_VERSION = 1
SYNTHESIS_OPTIONS_VERSION = 3
HANDOFF_OPTIONS_VERSION = 4

# cloudlet_handoff_security
HANDOFF_TLS_PSK = 0
HANDOFF_TLS_X509 = 1
HANDOFF_PLAINTEXT_UNSAFE = 2

# cloudlet_synthesis_options.flags
SYNTHESIS_EARLY_START = 1 << 0

# enums are C ints
cloudlet_status = c_int
cloudlet_tristate = c_int
cloudlet_log_level = c_int
cloudlet_capture_format = c_int

# ---------------------------------------------------------------- callbacks

# typedef int (*cloudlet_progress_cb)(const char *phase, uint64_t done,
#                                     uint64_t total, void *userdata);
progress_cb = CFUNCTYPE(c_int, c_char_p, c_uint64, c_uint64, c_void_p)

# typedef void (*cloudlet_log_cb)(cloudlet_log_level level, const char *message,
#                                 void *userdata);
log_cb = CFUNCTYPE(None, cloudlet_log_level, c_char_p, c_void_p)

# ---------------------------------------------------------------- opaque handles
# cloudlet_cancel *, cloudlet_ctx *, cloudlet_handoff_listener * are c_void_p.

cancel_p = c_void_p
ctx_p = c_void_p
listener_p = c_void_p


_O = TypeVar("_O", bound="_Options")


class _Options(Structure):
    """Base of option structs: default() mirrors the *_INIT macro."""

    _defaults_: ClassVar[dict[str, int]] = {}

    @classmethod
    def default(cls: type[_O]) -> _O:
        s = cls()
        for name, value in cls._defaults_.items():
            setattr(s, name, value)
        return s


# ---------------------------------------------------------------- context

class ctx_options(_Options):
    _fields_ = [
        ("version", c_uint),
        ("libvirt_uri", c_char_p),
        ("store_dir", c_char_p),
        ("worker_threads", c_uint),
        ("cpu_model", c_char_p),
        ("log_cb", log_cb),
        ("log_userdata", c_void_p),
        ("log_level", cloudlet_log_level),
    ]
    # CLOUDLET_CTX_OPTIONS_INIT
    _defaults_ = {"version": CTX_OPTIONS_VERSION, "log_level": LOG_WARN}


# ---------------------------------------------------------------- doctor

class doctor_options(_Options):
    _fields_ = [
        ("version", c_uint),
        ("boot_probe", c_int),
        ("probe_kernel", c_char_p),
        ("probe_timeout_ms", c_uint),
        ("progress", progress_cb),
        ("progress_userdata", c_void_p),
        ("cancel", cancel_p),
    ]
    _defaults_ = {"version": DOCTOR_OPTIONS_VERSION, "boot_probe": 1}


class virt_report(Structure):
    _fields_ = [
        ("version", c_uint),
        ("virt_type", c_char_p),
        ("offered", cloudlet_tristate),
        ("usable", cloudlet_tristate),
        ("usable_detail", c_char_p),
        ("probe_seconds", c_double),
        ("emulator", c_char_p),
        ("machine", c_char_p),
        ("cpu_model_usable", cloudlet_tristate),
        ("cpu_model_detail", c_char_p),
    ]


class host_report(Structure):
    _fields_ = [
        ("version", c_uint),
        ("libvirt_uri", c_char_p),
        ("libvirt_version", c_char_p),
        ("qemu_version", c_char_p),
        ("hostname", c_char_p),
        ("cpu_model", c_char_p),
        ("kvm_device", cloudlet_tristate),
        ("kvm_device_detail", c_char_p),
        ("virt_count", c_size_t),
        ("virt", POINTER(virt_report)),
        ("preferred_virt_type", c_char_p),
        ("acpi_hotplug", cloudlet_tristate),
        ("acpi_hotplug_detail", c_char_p),
        ("store_dir", c_char_p),
        ("store_writable", cloudlet_tristate),
        ("store_free_bytes", c_uint64),
        ("store_total_bytes", c_uint64),
        ("probe_kernel", c_char_p),
        ("early_start", cloudlet_tristate),  # version 2
        ("early_start_detail", c_char_p),
    ]
    _arrays_ = {"virt": "virt_count"}


# ---------------------------------------------------------------- snapshots

class snapshot_options(_Options):
    _fields_ = [
        ("version", c_uint),
        ("progress", progress_cb),
        ("progress_userdata", c_void_p),
        ("cancel", cancel_p),
    ]
    _defaults_ = {"version": SNAPSHOT_OPTIONS_VERSION}


class ram_block_info(Structure):
    _fields_ = [
        ("version", c_uint),
        ("name", c_char_p),
        ("length", c_uint64),
        ("pages", c_uint64),
        ("zero_pages", c_uint64),
        ("data_pages", c_uint64),
    ]


class snapshot_info(Structure):
    _fields_ = [
        ("version", c_uint),
        ("path", c_char_p),
        ("format", c_char_p),
        ("image_version", c_uint),
        ("complete", c_int),
        ("was_running", c_int),
        ("stream_version", c_uint),
        ("machine_type", c_char_p),
        ("domain_name", c_char_p),
        ("domain_uuid", c_char_p),
        ("block_count", c_size_t),
        ("blocks", POINTER(ram_block_info)),
        ("total_pages", c_uint64),
        ("zero_pages", c_uint64),
        ("data_pages", c_uint64),
        ("page_records", c_uint64),
        ("ram_sections", c_uint64),
        ("file_bytes", c_uint64),
        ("device_state_bytes", c_uint64),
        ("device_count", c_size_t),
        ("devices", POINTER(c_char_p)),
        ("devices_split", c_int),
    ]
    _arrays_ = {"blocks": "block_count", "devices": "device_count"}


class capture_options(_Options):
    _fields_ = [
        ("version", c_uint),
        ("live", c_int),
        ("stop", c_int),
        ("format", cloudlet_capture_format),
        ("progress", progress_cb),
        ("progress_userdata", c_void_p),
        ("cancel", cancel_p),
    ]
    _defaults_ = {"version": CAPTURE_OPTIONS_VERSION, "format": CAPTURE_SAVE_IMAGE}


class capture_result(Structure):
    _fields_ = [
        ("version", c_uint),
        ("path", c_char_p),
        ("domain_name", c_char_p),
        ("domain_uuid", c_char_p),
        ("was_running", c_int),
        ("final_state", c_char_p),
        ("stream_bytes", c_uint64),
        ("page_records", c_uint64),
        ("ram_sections", c_uint64),
        ("passes", c_uint64),
        ("total_pages", c_uint64),
        ("data_pages", c_uint64),
        ("file_bytes", c_uint64),
        ("seconds", c_double),
        ("downtime_ms", c_double),
    ]


# ---------------------------------------------------------------- bases

class base_part(Structure):
    _fields_ = [
        ("version", c_uint),
        ("file", c_char_p),
        ("role", c_char_p),
        ("target", c_char_p),
        ("size", c_uint64),
        ("sha256", c_char_p),
    ]


class base_info(Structure):
    _fields_ = [
        ("version", c_uint),
        ("id", c_char_p),
        ("name", c_char_p),
        ("created", c_char_p),
        ("source_domain", c_char_p),
        ("dir", c_char_p),
        ("virt_type", c_char_p),
        ("machine", c_char_p),
        ("cpu_model", c_char_p),
        ("memory_bytes", c_uint64),
        ("total_bytes", c_uint64),
        ("part_count", c_size_t),
        ("parts", POINTER(base_part)),
        ("status", c_char_p),
        ("problem", c_char_p),
        ("capture_seconds", c_double),
        ("disk_seconds", c_double),
        ("hash_seconds", c_double),
        ("total_seconds", c_double),
        ("allocated_bytes", c_uint64),                  # version 2
        ("part_allocated_bytes", POINTER(c_uint64)),    # version 2
        ("imported_from", c_char_p),                    # version 2
    ]
    _arrays_ = {"parts": "part_count", "part_allocated_bytes": "part_count"}


class base_options(_Options):
    _fields_ = [
        ("version", c_uint),
        ("name", c_char_p),
        ("stop", c_int),
        ("full_verify", c_int),
        ("progress", progress_cb),
        ("progress_userdata", c_void_p),
        ("cancel", cancel_p),
    ]
    _defaults_ = {"version": BASE_OPTIONS_VERSION}


class base_list(Structure):
    _fields_ = [
        ("version", c_uint),
        ("count", c_size_t),
        ("bases", POINTER(POINTER(base_info))),  # const cloudlet_base_info *const *
    ]
    _arrays_ = {"bases": "count"}


class resume_options(_Options):
    _fields_ = [
        ("version", c_uint),
        ("name", c_char_p),
        ("virt_type", c_char_p),
        ("progress", progress_cb),
        ("progress_userdata", c_void_p),
        ("cancel", cancel_p),
        ("uuid", c_char_p),  # version 2
        ("mac", c_char_p),
        ("network", c_char_p),
        ("nic_xml", c_char_p),
    ]
    _defaults_ = {"version": RESUME_OPTIONS_VERSION}


class instance_info(Structure):
    _fields_ = [
        ("version", c_uint),
        ("name", c_char_p),
        ("uuid", c_char_p),
        ("base_id", c_char_p),
        ("dir", c_char_p),
        ("virt_type", c_char_p),
        ("nic_count", c_size_t),
        ("macs", POINTER(c_char_p)),
        ("old_macs", POINTER(c_char_p)),
        ("seconds", c_double),
        ("restore_seconds", c_double),
        ("nic_seconds", c_double),
    ]
    _arrays_ = {"macs": "nic_count", "old_macs": "nic_count"}


# ---------------------------------------------------------------- overlays

class overlay_options(_Options):
    _fields_ = [
        ("version", c_uint),
        ("codec", c_char_p),
        ("level", c_int),
        ("stop", c_int),
        ("threads", c_uint),
        ("progress", progress_cb),
        ("progress_userdata", c_void_p),
        ("cancel", cancel_p),
    ]
    _defaults_ = {"version": OVERLAY_OPTIONS_VERSION, "level": -1}


class overlay_info(Structure):
    _fields_ = [
        ("version", c_uint),
        ("path", c_char_p),
        ("base_id", c_char_p),
        ("codec", c_char_p),
        ("domain", c_char_p),
        ("memory_chunks", c_uint64),
        ("disk_chunks", c_uint64),
        ("memory", c_uint64 * CHUNK_KINDS),
        ("disk", c_uint64 * CHUNK_KINDS),
        ("segments", c_uint64),
        ("payload_bytes", c_uint64),
        ("stored_bytes", c_uint64),
        ("file_bytes", c_uint64),
        ("device_state_bytes", c_uint64),
        ("capture_seconds", c_double),
        ("disk_seconds", c_double),
        ("total_seconds", c_double),
        # version 2
        ("memory_shifted", c_uint64),
        ("disk_shifted", c_uint64),
    ]


# ---------------------------------------------------------------- synthesis

class synthesis_options(_Options):
    _fields_ = [
        ("version", c_uint),
        ("base", c_char_p),
        ("name", c_char_p),
        ("virt_type", c_char_p),
        ("mac", c_char_p),
        ("network", c_char_p),
        ("nic_xml", c_char_p),
        ("threads", c_uint),
        ("ca_file", c_char_p),
        ("max_download_bytes", c_uint64),
        ("stall_timeout_seconds", c_uint),
        ("progress", progress_cb),
        ("progress_userdata", c_void_p),
        ("cancel", cancel_p),
        ("uuid", c_char_p),  # version 2
        ("flags", c_uint),  # version 3
    ]
    _defaults_ = {"version": SYNTHESIS_OPTIONS_VERSION}


class synthesis_info(Structure):
    _fields_ = [
        ("version", c_uint),
        ("name", c_char_p),
        ("uuid", c_char_p),
        ("base_id", c_char_p),
        ("dir", c_char_p),
        ("virt_type", c_char_p),
        ("source", c_char_p),
        ("nic_count", c_size_t),
        ("macs", POINTER(c_char_p)),
        ("old_macs", POINTER(c_char_p)),
        ("overlay_bytes", c_uint64),
        ("memory_chunks", c_uint64),
        ("disk_chunks", c_uint64),
        ("records", c_uint64 * CHUNK_KINDS),
        ("disk_layer_bytes", c_uint64),
        ("fetch_seconds", c_double),
        ("decompress_seconds", c_double),
        ("apply_seconds", c_double),
        ("read_seconds", c_double),
        ("restore_seconds", c_double),
        ("nic_seconds", c_double),
        ("total_seconds", c_double),
        ("early_start", c_int),  # version 2
        ("running_seconds", c_double),
        ("demand_requests", c_uint64),
        ("demand_pages", c_uint64),
        ("background_pages", c_uint64),
        ("held_pages", c_uint64),
    ]
    _arrays_ = {"macs": "nic_count", "old_macs": "nic_count"}


# ---------------------------------------------------------------- handoff

class handoff_options(_Options):
    _fields_ = [
        ("version", c_uint),
        ("token_file", c_char_p),
        ("timeout_seconds", c_uint),
        ("codec", c_char_p),
        ("level", c_int),
        ("name", c_char_p),
        ("virt_type", c_char_p),
        ("mac", c_char_p),
        ("network", c_char_p),
        ("nic_xml", c_char_p),
        ("progress", progress_cb),
        ("progress_userdata", c_void_p),
        ("cancel", cancel_p),
        ("uuid", c_char_p),  # version 2
        ("security", c_uint),  # version 3
        ("tls_dir", c_char_p),
        ("handshake_timeout_seconds", c_uint),
        ("resume_window_seconds", c_uint),  # version 4
    ]
    _defaults_ = {"version": HANDOFF_OPTIONS_VERSION, "level": -1, "resume_window_seconds": 30}


class handoff_info(Structure):
    _fields_ = [
        ("version", c_uint),
        ("domain", c_char_p),
        ("uuid", c_char_p),
        ("peer", c_char_p),
        ("base_id", c_char_p),
        ("dir", c_char_p),
        ("nic_count", c_size_t),
        ("macs", POINTER(c_char_p)),
        ("bytes_sent", c_uint64),
        ("bytes_received", c_uint64),
        ("memory_items", c_uint64),
        ("disk_items", c_uint64),
        ("stored_items", c_uint64),
        ("raw_bytes", c_uint64),
        ("replaced", c_uint64),
        ("total_seconds", c_double),
        ("downtime_seconds", c_double),
        ("link_mbps", c_double),
        ("drain_seconds", c_double),
        ("restore_seconds", c_double),
        ("codec", c_char_p),
        ("resumes", c_uint),  # version 2
        ("unacked_bytes", c_uint64),
        ("resent_bytes", c_uint64),
    ]
    _arrays_ = {"macs": "nic_count"}


# Every struct of the header, by its C name.
STRUCTS = {
    "cloudlet_ctx_options": ctx_options,
    "cloudlet_doctor_options": doctor_options,
    "cloudlet_virt_report": virt_report,
    "cloudlet_host_report": host_report,
    "cloudlet_snapshot_options": snapshot_options,
    "cloudlet_ram_block_info": ram_block_info,
    "cloudlet_snapshot_info": snapshot_info,
    "cloudlet_capture_options": capture_options,
    "cloudlet_capture_result": capture_result,
    "cloudlet_base_part": base_part,
    "cloudlet_base_info": base_info,
    "cloudlet_base_options": base_options,
    "cloudlet_base_list": base_list,
    "cloudlet_resume_options": resume_options,
    "cloudlet_instance_info": instance_info,
    "cloudlet_overlay_options": overlay_options,
    "cloudlet_overlay_info": overlay_info,
    "cloudlet_synthesis_options": synthesis_options,
    "cloudlet_synthesis_info": synthesis_info,
    "cloudlet_handoff_options": handoff_options,
    "cloudlet_handoff_info": handoff_info,
}

# ---------------------------------------------------------------- functions

P = POINTER
S = cloudlet_status

# name: (restype, [argtypes])  -- one entry per CLOUDLET_API function
FUNCTIONS: dict[str, tuple[Any, list[Any]]] = {
    # errors and version
    "cloudlet_strerror": (c_char_p, [S]),
    "cloudlet_last_error_message": (c_char_p, []),
    "cloudlet_last_error_status": (S, []),
    "cloudlet_version": (S, [P(c_int), P(c_int), P(c_int)]),
    "cloudlet_version_string": (c_char_p, []),
    # cancel
    "cloudlet_cancel_new": (S, [P(cancel_p)]),
    "cloudlet_cancel_trigger": (S, [cancel_p]),
    "cloudlet_cancel_is_triggered": (c_int, [cancel_p]),
    "cloudlet_cancel_free": (None, [cancel_p]),
    # context
    "cloudlet_ctx_options_init": (S, [P(ctx_options), c_uint]),
    "cloudlet_ctx_new": (S, [P(ctx_p), P(ctx_options)]),
    "cloudlet_ctx_free": (None, [ctx_p]),
    "cloudlet_ctx_settings": (S, [P(c_char_p), P(c_char_p), P(c_char_p), P(c_uint), ctx_p]),
    # doctor
    "cloudlet_doctor_options_init": (S, [P(doctor_options), c_uint]),
    "cloudlet_doctor": (S, [P(P(host_report)), ctx_p, P(doctor_options)]),
    "cloudlet_host_report_free": (None, [P(host_report)]),
    # snapshots
    "cloudlet_snapshot_options_init": (S, [P(snapshot_options), c_uint]),
    "cloudlet_snapshot_inspect": (S, [P(P(snapshot_info)), ctx_p, c_char_p, P(snapshot_options)]),
    "cloudlet_snapshot_info_free": (None, [P(snapshot_info)]),
    "cloudlet_capture_options_init": (S, [P(capture_options), c_uint]),
    "cloudlet_snapshot_capture": (S, [P(P(capture_result)), ctx_p, c_char_p, c_char_p,
                                      P(capture_options)]),
    "cloudlet_capture_result_free": (None, [P(capture_result)]),
    # bases
    "cloudlet_base_options_init": (S, [P(base_options), c_uint]),
    "cloudlet_base_create": (S, [P(P(base_info)), ctx_p, c_char_p, P(base_options)]),
    "cloudlet_base_show": (S, [P(P(base_info)), ctx_p, c_char_p, P(base_options)]),
    "cloudlet_base_list_get": (S, [P(P(base_list)), ctx_p]),
    "cloudlet_base_list_free": (None, [P(base_list)]),
    "cloudlet_base_remove": (S, [ctx_p, c_char_p]),
    "cloudlet_base_export": (S, [ctx_p, c_char_p, c_char_p, P(base_options)]),
    "cloudlet_base_import": (S, [P(P(base_info)), ctx_p, c_char_p, P(base_options)]),
    "cloudlet_base_package_inspect": (S, [P(P(base_info)), ctx_p, c_char_p]),
    "cloudlet_base_info_free": (None, [P(base_info)]),
    "cloudlet_resume_options_init": (S, [P(resume_options), c_uint]),
    "cloudlet_base_resume": (S, [P(P(instance_info)), ctx_p, c_char_p, P(resume_options)]),
    "cloudlet_instance_info_free": (None, [P(instance_info)]),
    "cloudlet_instance_remove": (S, [ctx_p, c_char_p]),
    # overlays
    "cloudlet_overlay_options_init": (S, [P(overlay_options), c_uint]),
    "cloudlet_overlay_create": (S, [P(P(overlay_info)), ctx_p, c_char_p, c_char_p,
                                    P(overlay_options)]),
    "cloudlet_overlay_inspect": (S, [P(P(overlay_info)), ctx_p, c_char_p, P(overlay_options)]),
    "cloudlet_overlay_info_free": (None, [P(overlay_info)]),
    # synthesis
    "cloudlet_synthesis_options_init": (S, [P(synthesis_options), c_uint]),
    "cloudlet_synthesize": (S, [P(P(synthesis_info)), ctx_p, c_char_p, P(synthesis_options)]),
    "cloudlet_synthesis_info_free": (None, [P(synthesis_info)]),
    # handoff
    "cloudlet_handoff_options_init": (S, [P(handoff_options), c_uint]),
    "cloudlet_handoff_send": (S, [P(P(handoff_info)), ctx_p, c_char_p, c_char_p,
                                  P(handoff_options)]),
    "cloudlet_handoff_token_check": (S, [c_char_p]),
    "cloudlet_handoff_receive_check": (S, [P(handoff_options)]),
    "cloudlet_handoff_listen": (S, [P(listener_p), ctx_p, c_char_p]),
    "cloudlet_handoff_listener_port": (S, [listener_p, P(c_uint)]),
    "cloudlet_handoff_receive": (S, [P(P(handoff_info)), listener_p, P(handoff_options)]),
    "cloudlet_handoff_listener_free": (None, [listener_p]),
    "cloudlet_handoff_info_free": (None, [P(handoff_info)]),
}

del P, S


def _load() -> ctypes.CDLL:
    path = os.environ.get("CLOUDLET_LIBRARY")
    lib = ctypes.CDLL(path if path else "libcloudlet.so.0")
    for name, (restype, argtypes) in FUNCTIONS.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


lib = _load()
