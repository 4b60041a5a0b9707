"""Shared by the Python suites under this tree (python-ctypes/, nova-shim/):
the library of this tree's build unless CLOUDLET_LIBRARY names one."""
import os

_BUILT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build", "src",
                      "libcloudlet.so.0")
if "CLOUDLET_LIBRARY" not in os.environ and os.path.exists(_BUILT):
    os.environ["CLOUDLET_LIBRARY"] = _BUILT
