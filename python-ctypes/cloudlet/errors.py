"""Exceptions for cloudlet_status codes.

Every ABI call of the binding goes through check(): a negative status raises
the subclass of CloudletError for that status, carrying .status (int),
.name (cloudlet_strerror) and .message (cloudlet_last_error_message(), read
at once on the calling thread, before any other libcloudlet call).

Where Python has a built-in exception of the same meaning, the class also
derives from it, so code that knows nothing of cloudlet can catch it:

    InvalidArgumentError  ValueError
    NoMemoryError         MemoryError
    CloudletIOError       OSError
    NotFoundError         LookupError
    DeadlineError         TimeoutError      (an OSError, as in Python)
    AccessDeniedError     PermissionError   (an OSError, as in Python)

The other statuses have no built-in of that meaning (python-ctypes/README.md
says why for each) and derive from CloudletError only.  Every exception
survives pickle with its class, status, name and message.
"""

from __future__ import annotations

from typing import Any

from . import _lib


class CloudletError(Exception):
    """A libcloudlet call failed. .status, .name, .message."""

    status: int  # each subclass: its status; instances: the actual status
    name: str
    message: str

    def __init__(self, status: int, message: str, name: str | None = None) -> None:
        self.status = int(status)
        self.name = name if name is not None else strerror(status)
        self.message = message
        super().__init__(message or self.name)

    def __reduce__(self) -> tuple[Any, ...]:
        # The default (type(self), self.args) would call __init__ with the
        # message alone; OSError's would do the same.
        state = {k: v for k, v in self.__dict__.items()
                 if k not in ("status", "name", "message")}
        return (type(self), (self.status, self.message, self.name), state or None)

    def __str__(self) -> str:
        if self.message:
            return "%s (%s)" % (self.message, self.name)
        return self.name

    def __repr__(self) -> str:
        return "%s(status=%d, name=%r, message=%r)" % (
            type(self).__name__, self.status, self.name, self.message)


class InvalidArgumentError(CloudletError, ValueError):
    status = _lib.E_INVALID_ARG


class NoMemoryError(CloudletError, MemoryError):
    status = _lib.E_NOMEM


class VersionError(CloudletError):
    status = _lib.E_VERSION


class CloudletIOError(CloudletError, OSError):
    status = _lib.E_IO


class LibvirtError(CloudletError):
    status = _lib.E_LIBVIRT


class NotFoundError(CloudletError, LookupError):
    status = _lib.E_NOT_FOUND


class ExistsError(CloudletError):
    status = _lib.E_EXISTS


class CorruptError(CloudletError):
    status = _lib.E_CORRUPT


class UnsupportedError(CloudletError):
    status = _lib.E_UNSUPPORTED


class HostError(CloudletError):
    status = _lib.E_HOST


class CancelledError(CloudletError):
    status = _lib.E_CANCELLED


class DeadlineError(CloudletError, TimeoutError):
    status = _lib.E_TIMEOUT


class AccessDeniedError(CloudletError, PermissionError):
    status = _lib.E_PERMISSION


class BusyError(CloudletError):
    status = _lib.E_BUSY


class InternalError(CloudletError):
    status = _lib.E_INTERNAL


ERRORS: dict[int, type[CloudletError]] = {cls.status: cls for cls in (
    InvalidArgumentError, NoMemoryError, VersionError, CloudletIOError,
    LibvirtError, NotFoundError, ExistsError, CorruptError, UnsupportedError,
    HostError, CancelledError, DeadlineError, AccessDeniedError, BusyError,
    InternalError)}


def _str(b: bytes | None) -> str:
    return b.decode("utf-8", "replace") if b is not None else ""


def strerror(status: int) -> str:
    """The static English name of a status ("invalid argument")."""
    name: bytes | None = _lib.lib.cloudlet_strerror(int(status))
    return _str(name)


def last_error_message() -> str:
    """cloudlet_last_error_message() of the calling thread."""
    message: bytes | None = _lib.lib.cloudlet_last_error_message()
    return _str(message)


def last_error_status() -> int:
    """cloudlet_last_error_status() of the calling thread."""
    return int(_lib.lib.cloudlet_last_error_status())


def error_for(status: int, message: str) -> CloudletError:
    """The exception for `status` (unknown negative values: CloudletError)."""
    cls = ERRORS.get(int(status), CloudletError)
    return cls(status, message)


def check(status: int) -> int:
    """Raise the matching CloudletError if `status` is not CLOUDLET_OK.

    Call it right after the ABI call on the same thread: the message is read
    from the library's thread-local state before anything else.
    """
    status = int(status)
    if status == _lib.OK:
        return status
    # strerror is static and does not touch thread-local state, but read the
    # message first anyway.
    message = last_error_message()
    raise error_for(status, message)
