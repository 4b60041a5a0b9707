"""Conversions at the ABI boundary.

Out: C result structs are copied into frozen, typed dataclasses before they
are freed (copy()).  In: every string argument goes through c_str(), which
refuses a string with a NUL in it: ctypes would pass it as a char * that the
library reads only up to the NUL, so "/tmp/a\\0b" would silently be "/tmp/a".

Each dataclass has exactly the fields of its C struct, in order, typed:
  unsigned int, int, uint64_t, size_t  -> int
  double                               -> float
  cloudlet_tristate                    -> Tristate
  const char *                         -> str | None (NULL: None)
  T *x + a count field, T x[N]         -> tuple[T, ...]
"""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import os
import typing
from typing import Any, TypeVar, Union

from . import _lib
from .errors import InvalidArgumentError

# What a `const char *` argument accepts.
CString = Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]


def c_str(value: CString | None, what: str) -> bytes | None:
    """str / bytes / os.PathLike / None -> bytes or None for a const char *.

    A value with a NUL character is refused (InvalidArgumentError, a
    ValueError) instead of being cut at the NUL by C.
    """
    if value is None:
        return None
    b = value if isinstance(value, bytes) else os.fsencode(value)
    nul = b.find(b"\0")
    if nul >= 0:
        raise InvalidArgumentError(
            _lib.E_INVALID_ARG,
            "%s contains a NUL character (at byte %d); a C string would end there"
            % (what, nul))
    return b


class Tristate(enum.IntEnum):
    """cloudlet_tristate."""
    UNKNOWN = _lib.UNKNOWN
    NO = _lib.NO
    YES = _lib.YES


def _s(b: bytes | None) -> str | None:
    return b.decode("utf-8", "replace") if b is not None else None


# ------------------------------------------------------------ the results

@dataclasses.dataclass(frozen=True)
class VirtReport:
    """A copy of cloudlet_virt_report (all fields of its version)."""
    version: int
    virt_type: str | None
    offered: Tristate
    usable: Tristate
    usable_detail: str | None
    probe_seconds: float
    emulator: str | None
    machine: str | None
    cpu_model_usable: Tristate
    cpu_model_detail: str | None


@dataclasses.dataclass(frozen=True)
class HostReport:
    """A copy of cloudlet_host_report (all fields of its version)."""
    version: int
    libvirt_uri: str | None
    libvirt_version: str | None
    qemu_version: str | None
    hostname: str | None
    cpu_model: str | None
    kvm_device: Tristate
    kvm_device_detail: str | None
    virt_count: int
    virt: tuple[VirtReport, ...]
    preferred_virt_type: str | None
    acpi_hotplug: Tristate
    acpi_hotplug_detail: str | None
    store_dir: str | None
    store_writable: Tristate
    store_free_bytes: int
    store_total_bytes: int
    probe_kernel: str | None
    early_start: Tristate
    early_start_detail: str | None


@dataclasses.dataclass(frozen=True)
class RamBlockInfo:
    """A copy of cloudlet_ram_block_info (all fields of its version)."""
    version: int
    name: str | None
    length: int
    pages: int
    zero_pages: int
    data_pages: int


@dataclasses.dataclass(frozen=True)
class SnapshotInfo:
    """A copy of cloudlet_snapshot_info (all fields of its version)."""
    version: int
    path: str | None
    format: str | None
    image_version: int
    complete: int
    was_running: int
    stream_version: int
    machine_type: str | None
    domain_name: str | None
    domain_uuid: str | None
    block_count: int
    blocks: tuple[RamBlockInfo, ...]
    total_pages: int
    zero_pages: int
    data_pages: int
    page_records: int
    ram_sections: int
    file_bytes: int
    device_state_bytes: int
    device_count: int
    devices: tuple[str | None, ...]
    devices_split: int


@dataclasses.dataclass(frozen=True)
class CaptureResult:
    """A copy of cloudlet_capture_result (all fields of its version)."""
    version: int
    path: str | None
    domain_name: str | None
    domain_uuid: str | None
    was_running: int
    final_state: str | None
    stream_bytes: int
    page_records: int
    ram_sections: int
    passes: int
    total_pages: int
    data_pages: int
    file_bytes: int
    seconds: float
    downtime_ms: float


@dataclasses.dataclass(frozen=True)
class BasePart:
    """A copy of cloudlet_base_part (all fields of its version)."""
    version: int
    file: str | None
    role: str | None
    target: str | None
    size: int
    sha256: str | None


@dataclasses.dataclass(frozen=True)
class BaseInfo:
    """A copy of cloudlet_base_info (all fields of its version)."""
    version: int
    id: str | None
    name: str | None
    created: str | None
    source_domain: str | None
    dir: str | None
    virt_type: str | None
    machine: str | None
    cpu_model: str | None
    memory_bytes: int
    total_bytes: int
    part_count: int
    parts: tuple[BasePart, ...]
    status: str | None
    problem: str | None
    capture_seconds: float
    disk_seconds: float
    hash_seconds: float
    total_seconds: float
    allocated_bytes: int
    part_allocated_bytes: tuple[int, ...]
    imported_from: str | None


@dataclasses.dataclass(frozen=True)
class BaseList:
    """A copy of cloudlet_base_list (all fields of its version)."""
    version: int
    count: int
    bases: tuple[BaseInfo | None, ...]


@dataclasses.dataclass(frozen=True)
class InstanceInfo:
    """A copy of cloudlet_instance_info (all fields of its version)."""
    version: int
    name: str | None
    uuid: str | None
    base_id: str | None
    dir: str | None
    virt_type: str | None
    nic_count: int
    macs: tuple[str | None, ...]
    old_macs: tuple[str | None, ...]
    seconds: float
    restore_seconds: float
    nic_seconds: float


@dataclasses.dataclass(frozen=True)
class OverlayInfo:
    """A copy of cloudlet_overlay_info (all fields of its version)."""
    version: int
    path: str | None
    base_id: str | None
    codec: str | None
    domain: str | None
    memory_chunks: int
    disk_chunks: int
    memory: tuple[int, ...]
    disk: tuple[int, ...]
    segments: int
    payload_bytes: int
    stored_bytes: int
    file_bytes: int
    device_state_bytes: int
    capture_seconds: float
    disk_seconds: float
    total_seconds: float
    memory_shifted: int
    disk_shifted: int


@dataclasses.dataclass(frozen=True)
class SynthesisInfo:
    """A copy of cloudlet_synthesis_info (all fields of its version)."""
    version: int
    name: str | None
    uuid: str | None
    base_id: str | None
    dir: str | None
    virt_type: str | None
    source: str | None
    nic_count: int
    macs: tuple[str | None, ...]
    old_macs: tuple[str | None, ...]
    overlay_bytes: int
    memory_chunks: int
    disk_chunks: int
    records: tuple[int, ...]
    disk_layer_bytes: int
    fetch_seconds: float
    decompress_seconds: float
    apply_seconds: float
    read_seconds: float
    restore_seconds: float
    nic_seconds: float
    total_seconds: float
    early_start: int
    running_seconds: float
    demand_requests: int
    demand_pages: int
    background_pages: int
    held_pages: int


@dataclasses.dataclass(frozen=True)
class HandoffInfo:
    """A copy of cloudlet_handoff_info (all fields of its version)."""
    version: int
    domain: str | None
    uuid: str | None
    peer: str | None
    base_id: str | None
    dir: str | None
    nic_count: int
    macs: tuple[str | None, ...]
    bytes_sent: int
    bytes_received: int
    memory_items: int
    disk_items: int
    stored_items: int
    raw_bytes: int
    replaced: int
    total_seconds: float
    downtime_seconds: float
    link_mbps: float
    drain_seconds: float
    restore_seconds: float
    codec: str | None
    resumes: int
    unacked_bytes: int
    resent_bytes: int


# C struct -> its dataclass
_CLASSES: dict[type[ctypes.Structure], type[Any]] = {
    _lib.virt_report: VirtReport,
    _lib.host_report: HostReport,
    _lib.ram_block_info: RamBlockInfo,
    _lib.snapshot_info: SnapshotInfo,
    _lib.capture_result: CaptureResult,
    _lib.base_part: BasePart,
    _lib.base_info: BaseInfo,
    _lib.base_list: BaseList,
    _lib.instance_info: InstanceInfo,
    _lib.overlay_info: OverlayInfo,
    _lib.synthesis_info: SynthesisInfo,
    _lib.handoff_info: HandoffInfo,
}
_STRUCTS: dict[type[Any], type[ctypes.Structure]] = {v: k for k, v in _CLASSES.items()}

# the public name of each result class
CLASSES: dict[str, type[Any]] = {cls.__name__: cls for cls in _CLASSES.values()}

# fields whose C type is cloudlet_tristate (a plain c_int in ctypes), per struct
_TRISTATE: dict[type[ctypes.Structure], frozenset[str]] = {
    sc: frozenset(n for n, t in typing.get_type_hints(cls).items() if t is Tristate)
    for sc, cls in _CLASSES.items()
}

T = TypeVar("T")


def struct_of(cls: type[Any]) -> type[ctypes.Structure]:
    """The C struct (ctypes class) a result dataclass copies."""
    return _STRUCTS[cls]


def result_class(struct_cls: type[ctypes.Structure]) -> type[Any]:
    return _CLASSES[struct_cls]


def _tristate(value: int) -> Tristate:
    # The C enum has these three values only; anything else is not known.
    try:
        return Tristate(value)
    except ValueError:
        return Tristate.UNKNOWN


def _copy_value(struct_cls: type[ctypes.Structure], name: str, ctype: Any,
                value: Any, s: ctypes.Structure) -> Any:
    arrays: dict[str, str] = getattr(struct_cls, "_arrays_", {})
    if name in arrays:
        n = getattr(s, arrays[name])
        if not value or n == 0:
            return ()
        target = ctype._type_
        if target is ctypes.c_char_p:
            return tuple(_s(value[i]) for i in range(n))
        if issubclass(target, ctypes._Pointer):  # array of struct pointers
            return tuple(copy(value[i].contents) if value[i] else None for i in range(n))
        if not issubclass(target, ctypes.Structure):  # array of numbers
            return tuple(value[i] for i in range(n))
        return tuple(copy(value[i]) for i in range(n))
    if ctype is ctypes.c_char_p:
        return _s(value)
    if isinstance(value, ctypes.Array):
        return tuple(value)
    if name in _TRISTATE[struct_cls]:
        return _tristate(value)
    return value


def copy(s: ctypes.Structure) -> Any:
    """Deep-copy the ctypes struct `s` into its frozen dataclass."""
    struct_cls = type(s)
    cls = _CLASSES[struct_cls]
    values = {}
    for field in struct_cls._fields_:
        name, ctype = field[0], field[1]
        values[name] = _copy_value(struct_cls, name, ctype, getattr(s, name), s)
    return cls(**values)


def copy_as(cls: type[T], s: ctypes.Structure) -> T:
    """copy(s), which must be a `cls` (typed for the callers)."""
    result = copy(s)
    assert isinstance(result, cls)
    return result
