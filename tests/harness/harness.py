"""The project's C test harness (tests/harness/harness.h) through ctypes:
the real libvirtd, and the project's own small Linux guest with a shell
channel the tests run commands on."""
import ctypes
import os

from ctypes import POINTER, byref, c_char_p, c_int, c_uint, c_void_p


class GuestOptions(ctypes.Structure):
    _fields_ = [("memory_mib", c_uint), ("disk_mib", c_uint), ("nic", c_int),
                ("qcow2_mib", c_uint),
                # 1: the Debian 12 guest (tests/guest/build-debian-guest.sh)
                ("debian", c_int)]


def _library_path():
    explicit = os.environ.get("CLOUDLET_TEST_HARNESS")
    if explicit:
        return explicit
    lib = os.environ["CLOUDLET_LIBRARY"]  # <build>/src/libcloudlet.so.0
    return os.path.join(os.path.dirname(os.path.dirname(lib)), "tests",
                        "libcloudlet-testharness.so")


_h = ctypes.CDLL(_library_path())
_h.th_setup.restype = c_int
_h.th_error.restype = c_char_p
_h.th_guest_start.argtypes = [POINTER(c_void_p), c_char_p, POINTER(GuestOptions)]
_h.th_guest_check.restype = c_void_p  # malloc'd char *, freed below
_h.th_guest_check.argtypes = [c_void_p, c_char_p, c_int]
_h.th_guest_domain_name.restype = c_char_p
_h.th_guest_domain_name.argtypes = [c_void_p]
_h.th_guest_attach_domain.argtypes = [POINTER(c_void_p), c_char_p, c_char_p, c_char_p]
_h.th_guest_attach_domain_at.argtypes = [POINTER(c_void_p), c_char_p, c_char_p, c_char_p, c_char_p]
_h.th_guest_poweroff.argtypes = [c_void_p]
_h.th_guest_destroy.argtypes = [c_void_p]
_h.th_guest_forget.argtypes = [c_void_p]
_libc = ctypes.CDLL(None)
_libc.free.argtypes = [c_void_p]


# An app developer's customisation of the small test guest, and what the
# Python suites compare between a launch VM and its copies: files in RAM
# (memory state) and disk ranges read past the guest's page cache.
APP_STEP = ("dd if=/dev/urandom of=/ram/app.bin bs=1M count=4 2>/dev/null && "
            "yes 'cloudlet app state' | head -c 2000000 > /ram/text && "
            "dd if=/dev/urandom of=/dev/vda bs=65536 count=16 seek=32 2>/dev/null && sync")
FINGERPRINT = ("cd /ram && md5sum app.bin text && echo 3 > /proc/sys/vm/drop_caches && "
               "dd if=/dev/vda bs=65536 skip=32 count=16 2>/dev/null | md5sum && "
               "dd if=/dev/vda bs=65536 skip=0 count=16 2>/dev/null | md5sum")


class HarnessError(RuntimeError):
    pass


def _fail():
    raise HarnessError(_h.th_error().decode())


def setup():
    if _h.th_setup() != 0:
        _fail()


class Guest:
    """A guest the harness started (start) or a domain it attached to
    (attach). close() destroys the domain (attached: no folder removed)."""

    def __init__(self, handle):
        self._g = handle

    @classmethod
    def start(cls, label, memory_mib=0, disk_mib=0, nic=True, qcow2_mib=0,
              debian=False):
        g = c_void_p()
        opts = GuestOptions(memory_mib, disk_mib, 1 if nic else 0, qcow2_mib,
                            1 if debian else 0)
        if _h.th_guest_start(byref(g), label.encode(), byref(opts)) != 0:
            _fail()
        return cls(g)

    @classmethod
    def attach(cls, domain, uri=None, paths=None):
        """The running domain's shell channel (of libvirtd at `uri`, default
        qemu:///system; `paths`: (prefix that host sees, the same folder
        here) when it has its own mount namespace)."""
        g = c_void_p()
        if uri:
            seen, here = paths or (None, None)
            rc = _h.th_guest_attach_domain_at(byref(g), uri.encode(), domain.encode(),
                                              seen and seen.encode(), here and here.encode())
        else:
            rc = _h.th_guest_attach_domain(byref(g), domain.encode(), None, None)
        if rc != 0:
            _fail()
        return cls(g)

    @property
    def domain(self):
        return _h.th_guest_domain_name(self._g).decode()

    def check(self, command, timeout_ms=120000):
        """Runs a shell command in the guest; its output, or HarnessError."""
        p = _h.th_guest_check(self._g, command.encode(), timeout_ms)
        if not p:
            _fail()
        try:
            return ctypes.string_at(p).decode()
        finally:
            _libc.free(p)

    def poweroff(self):
        """Stop the domain, keep its work folder (the base's files point there)."""
        _h.th_guest_poweroff(self._g)

    def close(self):
        if self._g:
            _h.th_guest_destroy(self._g)
            self._g = None

    def detach(self):
        """Let go of the guest and leave its domain running (it is the code
        under test's to move or remove)."""
        if self._g:
            _h.th_guest_forget(self._g)
            self._g = None
