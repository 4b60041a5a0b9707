"""Copies C result structs into frozen dataclasses (before they are freed)."""

import ctypes
import dataclasses
import enum

from . import _lib


class Tristate(enum.IntEnum):
    """cloudlet_tristate."""
    UNKNOWN = _lib.UNKNOWN
    NO = _lib.NO
    YES = _lib.YES


# struct fields typed cloudlet_tristate (a plain c_int in ctypes)
_TRISTATE_FIELDS = {
    "offered", "usable", "cpu_model_usable", "kvm_device", "acpi_hotplug",
    "store_writable",
}


def _s(b):
    return b.decode("utf-8", "replace") if b is not None else None


def _make_class(struct_cls, pyname):
    fields = [name for name, _ in struct_cls._fields_]
    cls = dataclasses.make_dataclass(pyname, fields, frozen=True)
    cls.__doc__ = "A copy of %s (all fields of its version)." % struct_cls.__name__
    return cls


def _copy_value(struct_cls, name, ctype, value, s):
    arrays = getattr(struct_cls, "_arrays_", {})
    if name in arrays:
        n = getattr(s, arrays[name])
        if not value or n == 0:
            return []
        target = ctype._type_
        if target is ctypes.c_char_p:
            return [_s(value[i]) for i in range(n)]
        if issubclass(target, ctypes._Pointer):  # array of struct pointers
            return [copy(value[i].contents) if value[i] else None for i in range(n)]
        if not issubclass(target, ctypes.Structure):  # array of numbers
            return [value[i] for i in range(n)]
        return [copy(value[i]) for i in range(n)]
    if ctype is ctypes.c_char_p:
        return _s(value)
    if isinstance(value, ctypes.Array):
        return list(value)
    if name in _TRISTATE_FIELDS:
        return Tristate(value) if value in (-1, 0, 1) else value
    return value


_CLASSES = {}


def result_class(struct_cls):
    return _CLASSES[struct_cls]


def copy(s):
    """Deep-copy the ctypes struct `s` into its frozen dataclass."""
    struct_cls = type(s)
    cls = _CLASSES[struct_cls]
    values = {}
    for name, ctype in struct_cls._fields_:
        values[name] = _copy_value(struct_cls, name, ctype, getattr(s, name), s)
    return cls(**values)


def _register():
    names = {
        _lib.virt_report: "VirtReport",
        _lib.host_report: "HostReport",
        _lib.ram_block_info: "RamBlockInfo",
        _lib.snapshot_info: "SnapshotInfo",
        _lib.capture_result: "CaptureResult",
        _lib.base_part: "BasePart",
        _lib.base_info: "BaseInfo",
        _lib.base_list: "BaseList",
        _lib.instance_info: "InstanceInfo",
        _lib.overlay_info: "OverlayInfo",
        _lib.synthesis_info: "SynthesisInfo",
        _lib.handoff_info: "HandoffInfo",
    }
    for struct_cls, pyname in names.items():
        _CLASSES[struct_cls] = _make_class(struct_cls, pyname)
    return {pyname: _CLASSES[sc] for sc, pyname in names.items()}


CLASSES = _register()
globals().update(CLASSES)
