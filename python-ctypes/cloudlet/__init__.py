"""cloudlet: Python binding of libcloudlet (pure Python, ctypes).

    import cloudlet
    with cloudlet.Context(store_dir="/tmp/store") as ctx:
        report = ctx.doctor()
        print(report.preferred_virt_type, [v.virt_type for v in report.virt])

Every call raises a subclass of CloudletError on failure.  Results are frozen
dataclasses copied out of the C structs before those are freed.  Long
operations take progress=callable(phase, done, total) (return True to stop;
an exception raised inside it stops the operation and is re-raised once the
call returns) and cancel=Cancel().
"""

import dataclasses
import enum
import os
import threading
import weakref
from ctypes import POINTER, byref, c_char_p, c_int, c_uint, c_void_p

from . import _lib
from ._convert import (BaseInfo, BasePart, BaseList, CaptureResult, HandoffInfo,
                       HostReport, InstanceInfo, OverlayInfo, RamBlockInfo,
                       SnapshotInfo, SynthesisInfo, Tristate, VirtReport)
from ._convert import copy as _copy
from .errors import (AccessDeniedError, BusyError, CancelledError, CloudletError,
                     CloudletIOError, CorruptError, DeadlineError, ExistsError,
                     HostError, InternalError, InvalidArgumentError, LibvirtError,
                     NoMemoryError, NotFoundError, UnsupportedError, VersionError,
                     check, last_error_message, last_error_status, strerror)

__all__ = [
    "Context", "Listener", "Cancel", "Settings", "version", "version_string",
    "strerror", "last_error_message", "last_error_status",
    "Tristate", "LogLevel", "CaptureFormat", "ChunkKind",
    "HostReport", "VirtReport", "SnapshotInfo", "RamBlockInfo", "CaptureResult",
    "BaseInfo", "BasePart", "BaseList", "InstanceInfo", "OverlayInfo",
    "SynthesisInfo", "HandoffInfo",
    "CloudletError", "InvalidArgumentError", "NoMemoryError", "VersionError",
    "CloudletIOError", "LibvirtError", "NotFoundError", "ExistsError",
    "CorruptError", "UnsupportedError", "HostError", "CancelledError",
    "DeadlineError", "AccessDeniedError", "BusyError", "InternalError",
]

_L = _lib.lib


class LogLevel(enum.IntEnum):
    ERROR = _lib.LOG_ERROR
    WARN = _lib.LOG_WARN
    INFO = _lib.LOG_INFO
    DEBUG = _lib.LOG_DEBUG


class CaptureFormat(enum.IntEnum):
    SAVE_IMAGE = _lib.CAPTURE_SAVE_IMAGE
    MEMORY_IMAGE = _lib.CAPTURE_MEMORY_IMAGE


class ChunkKind(enum.IntEnum):
    """Indexes of OverlayInfo.memory/.disk and SynthesisInfo.records."""
    UNCHANGED = _lib.CHUNK_UNCHANGED
    ZERO = _lib.CHUNK_ZERO
    BASE_MEMORY = _lib.CHUNK_BASE_MEMORY
    BASE_DISK = _lib.CHUNK_BASE_DISK
    SELF = _lib.CHUNK_SELF
    DATA = _lib.CHUNK_DATA
    DELTA = _lib.CHUNK_DELTA


@dataclasses.dataclass(frozen=True)
class Settings:
    """A context's effective settings (cloudlet_ctx_settings)."""
    libvirt_uri: str
    store_dir: str
    cpu_model: str
    worker_threads: int


def _b(value):
    """str / bytes / os.PathLike / None -> bytes or None for a const char *."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return os.fsencode(value)


def _str(b):
    return b.decode("utf-8", "replace") if b is not None else None


def version():
    """The run-time library version as (major, minor, patch)."""
    major, minor, patch = c_int(), c_int(), c_int()
    check(_L.cloudlet_version(byref(major), byref(minor), byref(patch)))
    return (major.value, minor.value, patch.value)


def version_string():
    """The run-time library version as "MAJOR.MINOR.PATCH"."""
    return _str(_L.cloudlet_version_string())


def handoff_token_check(token_file):
    """Raise what a handoff would for this token file (owner-only, >= 32
    bytes); return None if it is usable."""
    check(_L.cloudlet_handoff_token_check(_b(token_file)))


class _Closing:
    """A handle freed exactly once by close(): as a context manager, and when
    garbage-collected if nobody closed it."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Cancel(_Closing):
    """A cancel handle (cloudlet_cancel). trigger() works from any thread.

    Pass it as cancel= to long operations; one handle may serve several.
    Free it with close() (or a with block) once no operation uses it.
    """

    def __init__(self):
        h = c_void_p()
        check(_L.cloudlet_cancel_new(byref(h)))
        self._handle = h
        self._lock = threading.Lock()

    def _ptr(self):
        h = self._handle
        if h is None or not h.value:
            raise ValueError("Cancel handle is closed")
        return h.value

    def trigger(self):
        """Ask every operation using this handle to stop and undo."""
        _L.cloudlet_cancel_trigger(self._ptr())

    @property
    def triggered(self):
        return bool(_L.cloudlet_cancel_is_triggered(self._ptr()))

    def is_triggered(self):
        return self.triggered

    def close(self):
        with self._lock:
            h, self._handle = self._handle, None
        if h is not None and h.value:
            _L.cloudlet_cancel_free(h)



class _Progress:
    """Adapts progress=callable(phase, done, total) to cloudlet_progress_cb."""

    def __init__(self, fn):
        self.fn = fn
        self.exc = None
        self.c = _lib.progress_cb(self._call)  # kept alive by self

    def _call(self, phase, done, total, userdata):
        if self.exc is not None:
            return 1
        try:
            stop = self.fn(_str(phase), int(done), int(total))
        except BaseException as e:  # never let it vanish inside ctypes
            self.exc = e
            return 1
        return 1 if stop else 0


def _opts(struct_cls, progress=None, cancel=None, **fields):
    """An option struct from its *_INIT defaults plus `fields`.

    Returns (struct, keepalive) -- keepalive holds every object the struct
    points to and must live until the call returns.
    """
    s = struct_cls.default()
    keep = []
    for name, value in fields.items():
        if value is None:
            continue
        ftype = dict(struct_cls._fields_)[name]
        if ftype is c_char_p:
            value = _b(value)
            keep.append(value)
        setattr(s, name, value)
    prog = None
    if progress is not None:
        if not callable(progress):
            raise TypeError("progress must be callable")
        prog = _Progress(progress)
        s.progress = prog.c
        keep.append(prog)
    if cancel is not None:
        if not isinstance(cancel, Cancel):
            raise TypeError("cancel must be a cloudlet.Cancel")
        s.cancel = cancel._ptr()
        keep.append(cancel)
    return s, keep, prog


def _invoke(fn, out_type, free, args, opts, keep, prog):
    """Call fn(&out, *args, &opts), copy out the result, free it, raise errors.

    An exception raised by the progress callback wins over the status (it is
    chained to the CloudletError the call returned, if any).
    """
    out = POINTER(out_type)() if out_type is not None else None
    call_args = ([byref(out)] if out is not None else []) + list(args)
    if opts is not None:
        call_args.append(byref(opts))
    status = fn(*call_args)
    err = None
    try:
        check(status)  # reads the message right away, same thread
    except CloudletError as e:
        err = e
    result = None
    if out:  # non-NULL pointer
        try:
            result = _copy(out.contents)
        finally:
            free(out)
    del keep  # the call is over: callbacks and strings may go now
    if prog is not None and prog.exc is not None:
        exc, prog.exc = prog.exc, None
        raise exc from err
    if err is not None:
        raise err
    return result


class Context(_Closing):
    """A libcloudlet context (cloudlet_ctx): configuration plus a lazily opened
    libvirt connection.  Use as a context manager or call close().

    log: optional callable(level: LogLevel, message: str), may be called from
    several worker threads at once; exceptions in it are ignored.
    """

    def __init__(self, libvirt_uri=None, store_dir=None, cpu_model=None,
                 worker_threads=0, log=None, log_level=LogLevel.WARN):
        opts, keep, _ = _opts(_lib.ctx_options, libvirt_uri=libvirt_uri,
                              store_dir=store_dir, cpu_model=cpu_model,
                              worker_threads=int(worker_threads),
                              log_level=int(log_level))
        self._log = None
        if log is not None:
            if not callable(log):
                raise TypeError("log must be callable")

            def _log_cb(level, message, userdata, _fn=log):
                try:
                    try:
                        level = LogLevel(level)
                    except ValueError:
                        pass
                    _fn(level, _str(message))
                except BaseException:
                    pass

            self._log = _lib.log_cb(_log_cb)  # lives as long as the context
            opts.log_cb = self._log
        self._lock = threading.Lock()
        self._listeners = weakref.WeakSet()
        self._handle = None
        h = c_void_p()
        check(_L.cloudlet_ctx_new(byref(h), byref(opts)))
        self._handle = h
        del keep

    # -- lifetime

    @property
    def closed(self):
        return self._handle is None

    def _h(self):
        h = self._handle
        if h is None:
            raise ValueError("Context is closed")
        return h

    def close(self):
        """Free the context (and any listener still open on it). Idempotent."""
        with self._lock:
            h, self._handle = self._handle, None
            listeners = list(self._listeners)
        if h is None:
            return
        for listener in listeners:
            listener.close()
        _L.cloudlet_ctx_free(h)


    # -- settings

    def settings(self):
        """The effective settings, resolved from defaults."""
        uri, store, cpu = c_char_p(), c_char_p(), c_char_p()
        workers = c_uint()
        check(_L.cloudlet_ctx_settings(byref(uri), byref(store), byref(cpu),
                                       byref(workers), self._h()))
        return Settings(_str(uri.value), _str(store.value), _str(cpu.value),
                        workers.value)

    # -- doctor

    def doctor(self, boot_probe=False, probe_kernel=None, probe_timeout_ms=0,
               progress=None, cancel=None):
        """Examine the host (cloudlet_doctor) -> HostReport.

        Note: boot_probe defaults to False here (capabilities only, fast);
        the C default is 1.
        """
        opts, keep, prog = _opts(_lib.doctor_options, progress, cancel,
                                 boot_probe=1 if boot_probe else 0,
                                 probe_kernel=probe_kernel,
                                 probe_timeout_ms=int(probe_timeout_ms))
        return _invoke(_L.cloudlet_doctor, _lib.host_report,
                       _L.cloudlet_host_report_free, [self._h()], opts, keep, prog)

    # -- snapshots

    def snapshot_inspect(self, path, progress=None, cancel=None):
        """Describe a libvirt save image or QEMU migration stream -> SnapshotInfo."""
        opts, keep, prog = _opts(_lib.snapshot_options, progress, cancel)
        return _invoke(_L.cloudlet_snapshot_inspect, _lib.snapshot_info,
                       _L.cloudlet_snapshot_info_free, [self._h(), _b(path)],
                       opts, keep, prog)

    def snapshot_capture(self, domain, path, live=False, stop=False,
                         format=CaptureFormat.SAVE_IMAGE, progress=None, cancel=None):
        """Capture a running or paused domain into `path` -> CaptureResult."""
        opts, keep, prog = _opts(_lib.capture_options, progress, cancel,
                                 live=1 if live else 0, stop=1 if stop else 0,
                                 format=int(format))
        return _invoke(_L.cloudlet_snapshot_capture, _lib.capture_result,
                       _L.cloudlet_capture_result_free,
                       [self._h(), _b(domain), _b(path)], opts, keep, prog)

    # -- bases

    def base_create(self, domain, name=None, stop=False, progress=None, cancel=None):
        """Make a base VM of a domain -> BaseInfo."""
        opts, keep, prog = _opts(_lib.base_options, progress, cancel,
                                 name=name, stop=1 if stop else 0)
        return _invoke(_L.cloudlet_base_create, _lib.base_info,
                       _L.cloudlet_base_info_free, [self._h(), _b(domain)],
                       opts, keep, prog)

    def base_show(self, base, verify=False, progress=None, cancel=None):
        """Verify and describe a base (ID, name or ID prefix) -> BaseInfo.

        verify=True re-hashes every part (full_verify). Corruption shows in
        .status == "corrupt", not as an exception.
        """
        opts, keep, prog = _opts(_lib.base_options, progress, cancel,
                                 full_verify=1 if verify else 0)
        return _invoke(_L.cloudlet_base_show, _lib.base_info,
                       _L.cloudlet_base_info_free, [self._h(), _b(base)],
                       opts, keep, prog)

    def base_list(self):
        """The bases in the store (not verified) -> list of BaseInfo."""
        lst = _invoke(_L.cloudlet_base_list_get, _lib.base_list,
                      _L.cloudlet_base_list_free, [self._h()], None, None, None)
        return list(lst.bases) if lst is not None else []

    def base_remove(self, base):
        """Remove a base from the store."""
        check(_L.cloudlet_base_remove(self._h(), _b(base)))

    def base_export(self, base, path, progress=None, cancel=None):
        """Write a verified base as one package file."""
        opts, keep, prog = _opts(_lib.base_options, progress, cancel)
        _invoke(_L.cloudlet_base_export, None, None,
                [self._h(), _b(base), _b(path)], opts, keep, prog)

    def base_import(self, path, name=None, progress=None, cancel=None):
        """Read a package into the store, verifying it -> BaseInfo."""
        opts, keep, prog = _opts(_lib.base_options, progress, cancel, name=name)
        return _invoke(_L.cloudlet_base_import, _lib.base_info,
                       _L.cloudlet_base_info_free, [self._h(), _b(path)],
                       opts, keep, prog)

    def base_package_inspect(self, path):
        """What a package file holds (ID, name, parts) without importing it;
        the parts are not read (status "unverified") -> BaseInfo."""
        return _invoke(_L.cloudlet_base_package_inspect, _lib.base_info,
                       _L.cloudlet_base_info_free, [self._h(), _b(path)],
                       None, None, None)

    def base_resume(self, base, name=None, virt_type=None, uuid=None, mac=None,
                    network=None, nic_xml=None, progress=None, cancel=None):
        """Start a new instance of a base -> InstanceInfo (uuid: the domain's UUID;
        mac/network/nic_xml: its fresh NICs, as in synthesize)."""
        opts, keep, prog = _opts(_lib.resume_options, progress, cancel,
                                 name=name, virt_type=virt_type, uuid=uuid, mac=mac,
                                 network=network, nic_xml=nic_xml)
        return _invoke(_L.cloudlet_base_resume, _lib.instance_info,
                       _L.cloudlet_instance_info_free, [self._h(), _b(base)],
                       opts, keep, prog)

    def instance_remove(self, name):
        """Remove the files of instance `name` once its domain no longer runs."""
        check(_L.cloudlet_instance_remove(self._h(), _b(name)))

    # -- overlays

    def overlay_create(self, domain, path, codec=None, level=-1, stop=False,
                       threads=0, progress=None, cancel=None):
        """Make an overlay of an instance of a base -> OverlayInfo."""
        opts, keep, prog = _opts(_lib.overlay_options, progress, cancel,
                                 codec=codec, level=int(level),
                                 stop=1 if stop else 0, threads=int(threads))
        return _invoke(_L.cloudlet_overlay_create, _lib.overlay_info,
                       _L.cloudlet_overlay_info_free,
                       [self._h(), _b(domain), _b(path)], opts, keep, prog)

    def overlay_inspect(self, path, progress=None, cancel=None):
        """Read and verify a whole overlay file -> OverlayInfo."""
        opts, keep, prog = _opts(_lib.overlay_options, progress, cancel)
        return _invoke(_L.cloudlet_overlay_inspect, _lib.overlay_info,
                       _L.cloudlet_overlay_info_free, [self._h(), _b(path)],
                       opts, keep, prog)

    # -- synthesis

    def synthesize(self, overlay, base=None, name=None, virt_type=None, mac=None,
                   network=None, nic_xml=None, threads=0, ca_file=None,
                   max_download_bytes=0, stall_timeout_seconds=0, uuid=None,
                   progress=None, cancel=None):
        """Synthesize the launch VM of an overlay (path or http(s) URL) -> SynthesisInfo."""
        opts, keep, prog = _opts(_lib.synthesis_options, progress, cancel,
                                 base=base, name=name, virt_type=virt_type,
                                 uuid=uuid, mac=mac, network=network, nic_xml=nic_xml,
                                 threads=int(threads), ca_file=ca_file,
                                 max_download_bytes=int(max_download_bytes),
                                 stall_timeout_seconds=int(stall_timeout_seconds))
        return _invoke(_L.cloudlet_synthesize, _lib.synthesis_info,
                       _L.cloudlet_synthesis_info_free, [self._h(), _b(overlay)],
                       opts, keep, prog)

    # -- handoff

    def handoff_send(self, domain, destination, token_file, timeout_seconds=0,
                     codec=None, level=-1, progress=None, cancel=None):
        """Move the running VM `domain` to the cloudlet at "HOST:PORT" -> HandoffInfo."""
        opts, keep, prog = _opts(_lib.handoff_options, progress, cancel,
                                 token_file=token_file,
                                 timeout_seconds=int(timeout_seconds),
                                 codec=codec, level=int(level))
        return _invoke(_L.cloudlet_handoff_send, _lib.handoff_info,
                       _L.cloudlet_handoff_info_free,
                       [self._h(), _b(domain), _b(destination)], opts, keep, prog)

    def handoff_listen(self, address):
        """Listen on "ADDR:PORT" (port 0: any) -> Listener."""
        h = c_void_p()
        check(_L.cloudlet_handoff_listen(byref(h), self._h(), _b(address)))
        listener = Listener(self, h)
        self._listeners.add(listener)
        return listener


class Listener(_Closing):
    """A handoff listener (cloudlet_handoff_listener); from Context.handoff_listen.

    Holds a reference to its Context, which must stay open while it is used.
    """

    def __init__(self, ctx, handle):
        self._ctx = ctx
        self._handle = handle
        self._lock = threading.Lock()

    def _h(self):
        h = self._handle
        if h is None:
            raise ValueError("Listener is closed")
        return h

    @property
    def closed(self):
        return self._handle is None

    @property
    def port(self):
        port = c_uint()
        check(_L.cloudlet_handoff_listener_port(self._h(), byref(port)))
        return port.value

    def receive(self, token_file, name=None, virt_type=None, mac=None, network=None,
                nic_xml=None, timeout_seconds=0, uuid=None, progress=None, cancel=None):
        """Wait for one handoff and serve it -> HandoffInfo."""
        opts, keep, prog = _opts(_lib.handoff_options, progress, cancel,
                                 token_file=token_file,
                                 timeout_seconds=int(timeout_seconds),
                                 name=name, virt_type=virt_type, mac=mac,
                                 network=network, nic_xml=nic_xml, uuid=uuid)
        return _invoke(_L.cloudlet_handoff_receive, _lib.handoff_info,
                       _L.cloudlet_handoff_info_free, [self._h()], opts, keep, prog)

    def close(self):
        with self._lock:
            h, self._handle = self._handle, None
        if h is not None:
            _L.cloudlet_handoff_listener_free(h)

