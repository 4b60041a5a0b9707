"""Exceptions for cloudlet_status codes.

Every ABI call of the binding goes through check(): a negative status raises
the subclass of CloudletError for that status, carrying .status (int),
.name (cloudlet_strerror) and .message (cloudlet_last_error_message(), read
at once on the calling thread, before any other libcloudlet call).
"""

from . import _lib


class CloudletError(Exception):
    """A libcloudlet call failed. .status, .name, .message."""

    status = None  # class default; instances carry the actual status

    def __init__(self, status, message, name=None):
        self.status = int(status)
        self.name = name if name is not None else strerror(status)
        self.message = message
        super().__init__(message or self.name)

    def __str__(self):
        if self.message:
            return "%s (%s)" % (self.message, self.name)
        return self.name

    def __repr__(self):
        return "%s(status=%d, name=%r, message=%r)" % (
            type(self).__name__, self.status, self.name, self.message)


class InvalidArgumentError(CloudletError):
    status = _lib.E_INVALID_ARG


class NoMemoryError(CloudletError):
    status = _lib.E_NOMEM


class VersionError(CloudletError):
    status = _lib.E_VERSION


class CloudletIOError(CloudletError):
    status = _lib.E_IO


class LibvirtError(CloudletError):
    status = _lib.E_LIBVIRT


class NotFoundError(CloudletError):
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


class DeadlineError(CloudletError):
    status = _lib.E_TIMEOUT


class AccessDeniedError(CloudletError):
    status = _lib.E_PERMISSION


class BusyError(CloudletError):
    status = _lib.E_BUSY


class InternalError(CloudletError):
    status = _lib.E_INTERNAL


ERRORS = {cls.status: cls for cls in (
    InvalidArgumentError, NoMemoryError, VersionError, CloudletIOError,
    LibvirtError, NotFoundError, ExistsError, CorruptError, UnsupportedError,
    HostError, CancelledError, DeadlineError, AccessDeniedError, BusyError,
    InternalError)}


def _str(b):
    return b.decode("utf-8", "replace") if b is not None else ""


def strerror(status):
    """The static English name of a status ("invalid argument")."""
    return _str(_lib.lib.cloudlet_strerror(int(status)))


def last_error_message():
    """cloudlet_last_error_message() of the calling thread."""
    return _str(_lib.lib.cloudlet_last_error_message())


def last_error_status():
    """cloudlet_last_error_status() of the calling thread."""
    return int(_lib.lib.cloudlet_last_error_status())


def error_for(status, message):
    """The exception for `status` (unknown negative values: CloudletError)."""
    cls = ERRORS.get(int(status), CloudletError)
    return cls(status, message)


def check(status):
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
