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

Every string argument is a str, bytes or os.PathLike; one with a NUL
character in it is refused (InvalidArgumentError, a ValueError).
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import weakref
from ctypes import POINTER, Structure, byref, c_char_p, c_int, c_uint, c_void_p
from typing import Any, Callable, Final, TypeVar, Union

from . import _lib
from ._convert import (BaseInfo, BaseList, BasePart, CaptureResult, CString,
                       HandoffInfo, HostReport, InstanceInfo, OverlayInfo,
                       RamBlockInfo, SnapshotInfo, SynthesisInfo, Tristate,
                       VirtReport, c_str, copy_as, struct_of)
from .errors import (AccessDeniedError, BusyError, CancelledError, CloudletError,
                     CloudletIOError, CorruptError, DeadlineError, ExistsError,
                     HostError, InternalError, InvalidArgumentError, LibvirtError,
                     NoMemoryError, NotFoundError, UnsupportedError, VersionError,
                     check, last_error_message, last_error_status, strerror)

__all__ = [
    "__version__",
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
    "CString", "ProgressFn", "LogFn", "handoff_token_check", "handoff_receive_check", "HandoffSecurity",
]

# The version of this binding: that of the header it mirrors
# (CLOUDLET_VERSION_*, the source tree's). version_string() is the run-time
# library's, which may be newer.
__version__: Final[str] = "%d.%d.%d" % (
    _lib.VERSION_MAJOR, _lib.VERSION_MINOR, _lib.VERSION_PATCH)

_L = _lib.lib

_T = TypeVar("_T")
_C = TypeVar("_C", bound="_Closing")


class LogLevel(enum.IntEnum):
    ERROR = _lib.LOG_ERROR
    WARN = _lib.LOG_WARN
    INFO = _lib.LOG_INFO
    DEBUG = _lib.LOG_DEBUG


class HandoffSecurity(enum.IntEnum):
    """cloudlet_handoff_security: how a handoff connection is protected."""
    TLS_PSK = _lib.HANDOFF_TLS_PSK
    TLS_X509 = _lib.HANDOFF_TLS_X509
    PLAINTEXT_UNSAFE = _lib.HANDOFF_PLAINTEXT_UNSAFE


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


# progress=callable(phase, done, total): a true result stops the operation
ProgressFn = Callable[[str, int, int], object]
# log=callable(level, message): a LogLevel (a plain int if the library's is newer)
LogFn = Callable[[Union[LogLevel, int], str], object]


@dataclasses.dataclass(frozen=True)
class Settings:
    """A context's effective settings (cloudlet_ctx_settings)."""
    libvirt_uri: str
    store_dir: str
    cpu_model: str
    worker_threads: int


def _str(b: bytes | None) -> str:
    # strings the library guarantees (NULL would be a library bug): ""
    return b.decode("utf-8", "replace") if b is not None else ""


def version() -> tuple[int, int, int]:
    """The run-time library version as (major, minor, patch)."""
    major, minor, patch = c_int(), c_int(), c_int()
    check(_L.cloudlet_version(byref(major), byref(minor), byref(patch)))
    return (major.value, minor.value, patch.value)


def version_string() -> str:
    """The run-time library version as "MAJOR.MINOR.PATCH"."""
    return _str(_L.cloudlet_version_string())


def handoff_receive_check(token_file: CString | None = None,
                          security: HandoffSecurity = HandoffSecurity.TLS_PSK,
                          tls_dir: CString | None = None) -> None:
    """Raise what Listener.receive would for these credentials now (token
    file, or the X.509 directory's files); return None if they are usable."""
    opts, keep, _ = _opts(_lib.handoff_options, None, None, token_file=token_file,
                          security=int(security), tls_dir=tls_dir)
    check(_L.cloudlet_handoff_receive_check(byref(opts)))
    del keep


def handoff_token_check(token_file: CString) -> None:
    """Raise what a handoff would for this token file (owner-only, >= 32
    bytes); return None if it is usable."""
    check(_L.cloudlet_handoff_token_check(c_str(token_file, "token_file")))


class _Closing:
    """A handle freed exactly once by close(): as a context manager, and when
    garbage-collected if nobody closed it."""

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class Cancel(_Closing):
    """A cancel handle (cloudlet_cancel). trigger() works from any thread.

    Pass it as cancel= to long operations; one handle may serve several.
    Free it with close() (or a with block) once no operation uses it.
    """

    def __init__(self) -> None:
        self._handle: c_void_p | None = None
        h = c_void_p()
        check(_L.cloudlet_cancel_new(byref(h)))
        self._handle = h
        self._lock = threading.Lock()

    def _ptr(self) -> int:
        h = self._handle
        if h is None or not h.value:
            raise ValueError("Cancel handle is closed")
        return h.value

    def trigger(self) -> None:
        """Ask every operation using this handle to stop and undo."""
        _L.cloudlet_cancel_trigger(self._ptr())

    @property
    def triggered(self) -> bool:
        return bool(_L.cloudlet_cancel_is_triggered(self._ptr()))

    def is_triggered(self) -> bool:
        return self.triggered

    def close(self) -> None:
        with self._lock:
            h, self._handle = self._handle, None
        if h is not None and h.value:
            _L.cloudlet_cancel_free(h)



class _Progress:
    """Adapts progress=callable(phase, done, total) to cloudlet_progress_cb."""

    def __init__(self, fn: ProgressFn) -> None:
        self.fn = fn
        self.exc: BaseException | None = None
        self.c = _lib.progress_cb(self._call)  # kept alive by self

    def _call(self, phase: bytes | None, done: int, total: int, userdata: object) -> int:
        if self.exc is not None:
            return 1
        try:
            stop = self.fn(_str(phase), int(done), int(total))
        except BaseException as e:  # never let it vanish inside ctypes
            self.exc = e
            return 1
        return 1 if stop else 0


_O = TypeVar("_O", bound=_lib._Options)


def _opts(struct_cls: type[_O], progress: ProgressFn | None = None,
          cancel: Cancel | None = None,
          **fields: Any) -> tuple[_O, list[object], _Progress | None]:
    """An option struct from its *_INIT defaults plus `fields`.

    Returns (struct, keepalive, progress adapter) -- keepalive holds every
    object the struct points to and must live until the call returns.
    """
    s = struct_cls.default()
    keep: list[object] = []
    for name, value in fields.items():
        if value is None:
            continue
        ftype = dict((f[0], f[1]) for f in struct_cls._fields_)[name]
        if ftype is c_char_p:
            value = c_str(value, name)
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


def _call(fn: Any, result: type[_T] | None, free: Any, args: list[Any],
          opts: Structure | None, keep: list[object] | None,
          prog: _Progress | None) -> _T | None:
    """Call fn(&out, *args, &opts), copy out the result, free it, raise errors.

    An exception raised by the progress callback wins over the status (it is
    chained to the CloudletError the call returned, if any).
    """
    out = POINTER(struct_of(result))() if result is not None else None
    call_args = ([byref(out)] if out is not None else []) + list(args)
    if opts is not None:
        call_args.append(byref(opts))
    status = fn(*call_args)
    err = None
    try:
        check(status)  # reads the message right away, same thread
    except CloudletError as e:
        err = e
    copied = None
    if out and result is not None:  # non-NULL pointer
        try:
            copied = copy_as(result, out.contents)
        finally:
            free(out)
    del keep  # the call is over: callbacks and strings may go now
    if prog is not None and prog.exc is not None:
        exc, prog.exc = prog.exc, None
        raise exc from err
    if err is not None:
        raise err
    return copied


def _invoke(fn: Any, result: type[_T], free: Any, args: list[Any],
            opts: Structure | None, keep: list[object] | None,
            prog: _Progress | None) -> _T:
    """_call for a function with a result: the result, or the error."""
    copied = _call(fn, result, free, args, opts, keep, prog)
    if copied is None:
        raise InternalError(_lib.E_INTERNAL, "%s succeeded but returned no %s"
                            % (getattr(fn, "__name__", "call"), result.__name__))
    return copied


class Context(_Closing):
    """A libcloudlet context (cloudlet_ctx): configuration plus a lazily opened
    libvirt connection.  Use as a context manager or call close().

    log: optional callable(level: LogLevel, message: str), may be called from
    several worker threads at once; exceptions in it are ignored.
    """

    def __init__(self, libvirt_uri: CString | None = None, store_dir: CString | None = None,
                 cpu_model: str | None = None, worker_threads: int = 0,
                 log: LogFn | None = None, log_level: LogLevel = LogLevel.WARN) -> None:
        self._handle: c_void_p | None = None
        opts, keep, _ = _opts(_lib.ctx_options, libvirt_uri=libvirt_uri,
                              store_dir=store_dir, cpu_model=cpu_model,
                              worker_threads=int(worker_threads),
                              log_level=int(log_level))
        self._log: Any = None
        if log is not None:
            if not callable(log):
                raise TypeError("log must be callable")

            fn: LogFn = log

            def _log_cb(level: int, message: bytes | None, userdata: object,
                        _fn: LogFn = fn) -> None:
                try:
                    lvl: LogLevel | int = level
                    try:
                        lvl = LogLevel(level)
                    except ValueError:
                        pass
                    _fn(lvl, _str(message))
                except BaseException:
                    pass

            self._log = _lib.log_cb(_log_cb)  # lives as long as the context
            opts.log_cb = self._log
        self._lock = threading.Lock()
        self._listeners: weakref.WeakSet[Listener] = weakref.WeakSet()
        h = c_void_p()
        check(_L.cloudlet_ctx_new(byref(h), byref(opts)))
        self._handle = h
        del keep

    # -- lifetime

    @property
    def closed(self) -> bool:
        return self._handle is None

    def _h(self) -> c_void_p:
        h = self._handle
        if h is None:
            raise ValueError("Context is closed")
        return h

    def close(self) -> None:
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

    def settings(self) -> Settings:
        """The effective settings, resolved from defaults."""
        uri, store, cpu = c_char_p(), c_char_p(), c_char_p()
        workers = c_uint()
        check(_L.cloudlet_ctx_settings(byref(uri), byref(store), byref(cpu),
                                       byref(workers), self._h()))
        return Settings(_str(uri.value), _str(store.value), _str(cpu.value),
                        workers.value)

    # -- doctor

    def doctor(self, boot_probe: bool = False, probe_kernel: CString | None = None,
               probe_timeout_ms: int = 0, progress: ProgressFn | None = None,
               cancel: Cancel | None = None) -> HostReport:
        """Examine the host (cloudlet_doctor) -> HostReport.

        Note: boot_probe defaults to False here (capabilities only, fast);
        the C default is 1.
        """
        opts, keep, prog = _opts(_lib.doctor_options, progress, cancel,
                                 boot_probe=1 if boot_probe else 0,
                                 probe_kernel=probe_kernel,
                                 probe_timeout_ms=int(probe_timeout_ms))
        return _invoke(_L.cloudlet_doctor, HostReport,
                       _L.cloudlet_host_report_free, [self._h()], opts, keep, prog)

    # -- snapshots

    def snapshot_inspect(self, path: CString, progress: ProgressFn | None = None,
                         cancel: Cancel | None = None) -> SnapshotInfo:
        """Describe a libvirt save image or QEMU migration stream -> SnapshotInfo."""
        opts, keep, prog = _opts(_lib.snapshot_options, progress, cancel)
        return _invoke(_L.cloudlet_snapshot_inspect, SnapshotInfo,
                       _L.cloudlet_snapshot_info_free,
                       [self._h(), c_str(path, "path")], opts, keep, prog)

    def snapshot_capture(self, domain: str, path: CString, live: bool = False,
                         stop: bool = False,
                         format: CaptureFormat = CaptureFormat.SAVE_IMAGE,
                         progress: ProgressFn | None = None,
                         cancel: Cancel | None = None) -> CaptureResult:
        """Capture a running or paused domain into `path` -> CaptureResult."""
        opts, keep, prog = _opts(_lib.capture_options, progress, cancel,
                                 live=1 if live else 0, stop=1 if stop else 0,
                                 format=int(format))
        return _invoke(_L.cloudlet_snapshot_capture, CaptureResult,
                       _L.cloudlet_capture_result_free,
                       [self._h(), c_str(domain, "domain"), c_str(path, "path")],
                       opts, keep, prog)

    # -- bases

    def base_create(self, domain: str, name: str | None = None, stop: bool = False,
                    progress: ProgressFn | None = None,
                    cancel: Cancel | None = None) -> BaseInfo:
        """Make a base VM of a domain -> BaseInfo."""
        opts, keep, prog = _opts(_lib.base_options, progress, cancel,
                                 name=name, stop=1 if stop else 0)
        return _invoke(_L.cloudlet_base_create, BaseInfo,
                       _L.cloudlet_base_info_free, [self._h(), c_str(domain, "domain")],
                       opts, keep, prog)

    def base_show(self, base: str, verify: bool = False,
                  progress: ProgressFn | None = None,
                  cancel: Cancel | None = None) -> BaseInfo:
        """Verify and describe a base (ID, name or ID prefix) -> BaseInfo.

        verify=True re-hashes every part (full_verify). Corruption shows in
        .status == "corrupt", not as an exception.
        """
        opts, keep, prog = _opts(_lib.base_options, progress, cancel,
                                 full_verify=1 if verify else 0)
        return _invoke(_L.cloudlet_base_show, BaseInfo,
                       _L.cloudlet_base_info_free, [self._h(), c_str(base, "base")],
                       opts, keep, prog)

    def base_list(self) -> list[BaseInfo]:
        """The bases in the store (not verified) -> list of BaseInfo."""
        lst = _invoke(_L.cloudlet_base_list_get, BaseList,
                      _L.cloudlet_base_list_free, [self._h()], None, None, None)
        return [b for b in lst.bases if b is not None]

    def base_remove(self, base: str) -> None:
        """Remove a base from the store."""
        check(_L.cloudlet_base_remove(self._h(), c_str(base, "base")))

    def base_export(self, base: str, path: CString, progress: ProgressFn | None = None,
                    cancel: Cancel | None = None) -> None:
        """Write a verified base as one package file."""
        opts, keep, prog = _opts(_lib.base_options, progress, cancel)
        _call(_L.cloudlet_base_export, None, None,
              [self._h(), c_str(base, "base"), c_str(path, "path")], opts, keep, prog)

    def base_import(self, path: CString, name: str | None = None,
                    progress: ProgressFn | None = None,
                    cancel: Cancel | None = None) -> BaseInfo:
        """Read a package into the store, verifying it -> BaseInfo."""
        opts, keep, prog = _opts(_lib.base_options, progress, cancel, name=name)
        return _invoke(_L.cloudlet_base_import, BaseInfo,
                       _L.cloudlet_base_info_free, [self._h(), c_str(path, "path")],
                       opts, keep, prog)

    def base_package_inspect(self, path: CString) -> BaseInfo:
        """What a package file holds (ID, name, parts) without importing it;
        the parts are not read (status "unverified") -> BaseInfo."""
        return _invoke(_L.cloudlet_base_package_inspect, BaseInfo,
                       _L.cloudlet_base_info_free, [self._h(), c_str(path, "path")],
                       None, None, None)

    def base_resume(self, base: str, name: str | None = None,
                    virt_type: str | None = None, uuid: str | None = None,
                    mac: str | None = None, network: str | None = None,
                    nic_xml: str | None = None, progress: ProgressFn | None = None,
                    cancel: Cancel | None = None) -> InstanceInfo:
        """Start a new instance of a base -> InstanceInfo (uuid: the domain's UUID;
        mac/network/nic_xml: its fresh NICs, as in synthesize)."""
        opts, keep, prog = _opts(_lib.resume_options, progress, cancel,
                                 name=name, virt_type=virt_type, uuid=uuid, mac=mac,
                                 network=network, nic_xml=nic_xml)
        return _invoke(_L.cloudlet_base_resume, InstanceInfo,
                       _L.cloudlet_instance_info_free, [self._h(), c_str(base, "base")],
                       opts, keep, prog)

    def instance_remove(self, name: str) -> None:
        """Remove the files of instance `name` once its domain no longer runs."""
        check(_L.cloudlet_instance_remove(self._h(), c_str(name, "name")))

    # -- overlays

    def overlay_create(self, domain: str, path: CString, codec: str | None = None,
                       level: int = -1, stop: bool = False, threads: int = 0,
                       progress: ProgressFn | None = None,
                       cancel: Cancel | None = None) -> OverlayInfo:
        """Make an overlay of an instance of a base -> OverlayInfo."""
        opts, keep, prog = _opts(_lib.overlay_options, progress, cancel,
                                 codec=codec, level=int(level),
                                 stop=1 if stop else 0, threads=int(threads))
        return _invoke(_L.cloudlet_overlay_create, OverlayInfo,
                       _L.cloudlet_overlay_info_free,
                       [self._h(), c_str(domain, "domain"), c_str(path, "path")],
                       opts, keep, prog)

    def overlay_inspect(self, path: CString, progress: ProgressFn | None = None,
                        cancel: Cancel | None = None) -> OverlayInfo:
        """Read and verify a whole overlay file -> OverlayInfo."""
        opts, keep, prog = _opts(_lib.overlay_options, progress, cancel)
        return _invoke(_L.cloudlet_overlay_inspect, OverlayInfo,
                       _L.cloudlet_overlay_info_free, [self._h(), c_str(path, "path")],
                       opts, keep, prog)

    # -- synthesis

    def synthesize(self, overlay: CString, base: str | None = None,
                   name: str | None = None, virt_type: str | None = None,
                   mac: str | None = None, network: str | None = None,
                   nic_xml: str | None = None, threads: int = 0,
                   ca_file: CString | None = None, max_download_bytes: int = 0,
                   stall_timeout_seconds: int = 0, uuid: str | None = None,
                   early_start: bool = False,
                   progress: ProgressFn | None = None,
                   cancel: Cancel | None = None) -> SynthesisInfo:
        """Synthesize the launch VM of an overlay (path or http(s) URL) -> SynthesisInfo.

        `early_start`: the VM runs as soon as QEMU has its device state, its
        memory following by postcopy (docs/early-start.md)."""
        opts, keep, prog = _opts(_lib.synthesis_options, progress, cancel,
                                 base=base, name=name, virt_type=virt_type,
                                 uuid=uuid, mac=mac, network=network, nic_xml=nic_xml,
                                 threads=int(threads), ca_file=ca_file,
                                 max_download_bytes=int(max_download_bytes),
                                 stall_timeout_seconds=int(stall_timeout_seconds),
                                 flags=_lib.SYNTHESIS_EARLY_START if early_start else 0)
        return _invoke(_L.cloudlet_synthesize, SynthesisInfo,
                       _L.cloudlet_synthesis_info_free,
                       [self._h(), c_str(overlay, "overlay")], opts, keep, prog)

    # -- handoff

    def handoff_send(self, domain: str, destination: str, token_file: CString | None = None,
                     timeout_seconds: int = 0, codec: str | None = None, level: int = -1,
                     progress: ProgressFn | None = None,
                     cancel: Cancel | None = None,
                     security: HandoffSecurity = HandoffSecurity.TLS_PSK,
                     tls_dir: CString | None = None,
                     handshake_timeout_seconds: int = 0,
                     resume_window_seconds: int = 30) -> HandoffInfo:
        """Move the running VM `domain` to the cloudlet at "HOST:PORT" -> HandoffInfo.

        `security`: TLS with the token's PSK (default), TLS with X.509
        certificates in `tls_dir`, or PLAINTEXT_UNSAFE (docs/security.md).
        `resume_window_seconds`: a link that drops while the VM still runs
        here is reconnected within it (0: the handoff fails at once)."""
        opts, keep, prog = _opts(_lib.handoff_options, progress, cancel,
                                 token_file=token_file,
                                 timeout_seconds=int(timeout_seconds),
                                 codec=codec, level=int(level),
                                 security=int(security), tls_dir=tls_dir,
                                 handshake_timeout_seconds=int(handshake_timeout_seconds),
                                 resume_window_seconds=int(resume_window_seconds))
        return _invoke(_L.cloudlet_handoff_send, HandoffInfo,
                       _L.cloudlet_handoff_info_free,
                       [self._h(), c_str(domain, "domain"),
                        c_str(destination, "destination")], opts, keep, prog)

    def handoff_listen(self, address: str) -> Listener:
        """Listen on "ADDR:PORT" (port 0: any) -> Listener."""
        h = c_void_p()
        check(_L.cloudlet_handoff_listen(byref(h), self._h(), c_str(address, "address")))
        listener = Listener(self, h)
        self._listeners.add(listener)
        return listener


class Listener(_Closing):
    """A handoff listener (cloudlet_handoff_listener); from Context.handoff_listen.

    Holds a reference to its Context, which must stay open while it is used.
    """

    def __init__(self, ctx: Context, handle: c_void_p) -> None:
        self._ctx = ctx
        self._handle: c_void_p | None = handle
        self._lock = threading.Lock()

    def _h(self) -> c_void_p:
        h = self._handle
        if h is None:
            raise ValueError("Listener is closed")
        return h

    @property
    def closed(self) -> bool:
        return self._handle is None

    @property
    def port(self) -> int:
        port = c_uint()
        check(_L.cloudlet_handoff_listener_port(self._h(), byref(port)))
        return port.value

    def receive(self, token_file: CString | None = None, name: str | None = None,
                virt_type: str | None = None, mac: str | None = None,
                network: str | None = None, nic_xml: str | None = None,
                timeout_seconds: int = 0, uuid: str | None = None,
                progress: ProgressFn | None = None,
                cancel: Cancel | None = None,
                security: HandoffSecurity = HandoffSecurity.TLS_PSK,
                tls_dir: CString | None = None,
                handshake_timeout_seconds: int = 0,
                resume_window_seconds: int = 30) -> HandoffInfo:
        """Wait for one authenticated handoff and serve it -> HandoffInfo.

        Connections that fail before they authenticate are logged and do
        not end the wait. `resume_window_seconds`: how long a source whose
        link dropped may take to come back (0: not at all)."""
        opts, keep, prog = _opts(_lib.handoff_options, progress, cancel,
                                 token_file=token_file,
                                 timeout_seconds=int(timeout_seconds),
                                 name=name, virt_type=virt_type, mac=mac,
                                 network=network, nic_xml=nic_xml, uuid=uuid,
                                 security=int(security), tls_dir=tls_dir,
                                 handshake_timeout_seconds=int(handshake_timeout_seconds),
                                 resume_window_seconds=int(resume_window_seconds))
        return _invoke(_L.cloudlet_handoff_receive, HandoffInfo,
                       _L.cloudlet_handoff_info_free, [self._h()], opts, keep, prog)

    def close(self) -> None:
        with self._lock:
            h, self._handle = self._handle, None
        if h is not None:
            _L.cloudlet_handoff_listener_free(h)
