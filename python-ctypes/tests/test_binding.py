"""Tests of the cloudlet ctypes binding. No VMs needed.

Run:  cd /work/main && CLOUDLET_LIBRARY=/work/main/build/src/libcloudlet.so.0 \
      /usr/bin/python3 -m pytest -q python-ctypes
"""

import builtins
import contextlib
import ctypes
import dataclasses
import inspect
import os
import pathlib
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import types
import typing

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
HEADER = os.path.join(HERE, "..", "..", "include", "cloudlet.h")
BUILD_LIB = os.path.normpath(os.path.join(HERE, "..", "..", "build", "src", "libcloudlet.so.0"))
if "CLOUDLET_LIBRARY" not in os.environ and os.path.exists(BUILD_LIB):
    os.environ["CLOUDLET_LIBRARY"] = BUILD_LIB  # a build tree, when not told otherwise

import cloudlet  # noqa: E402
from cloudlet import _lib  # noqa: E402

L = _lib.lib


def _header():
    with open(HEADER) as f:
        return f.read()


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _header_functions():
    """{name: (return type text, [parameter texts])} of every CLOUDLET_API function."""
    text = _strip_comments(_header())
    out = {}
    for m in re.finditer(r"^CLOUDLET_API\s+([^;(]*?)\b(cloudlet_\w+)\s*\(([^)]*)\)\s*;",
                         text, re.M):
        ret, name, params = m.group(1).strip(), m.group(2), m.group(3).strip()
        plist = [] if params in ("", "void") else [p.strip() for p in params.split(",")]
        out[name] = (ret, plist)
    return out


def _header_struct_decls():
    """{struct name: [(field name, its declaration)]} of every struct of the header."""
    text = _strip_comments(_header())
    out = {}
    for m in re.finditer(r"typedef\s+struct\s+(cloudlet_\w+)\s*\{(.*?)\}\s*\1\s*;", text, re.S):
        fields = []
        for decl in m.group(2).split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            parts = decl.split(",")
            for i, d in enumerate(parts):
                d = re.sub(r"\[[^\]]*\]", "", d).strip()
                fields.append((re.findall(r"\w+", d)[-1], decl))
        out[m.group(1)] = fields
    return out


def _header_structs():
    """{struct name: [field names]} of every struct defined in the header."""
    return {k: [n for n, _ in v] for k, v in _header_struct_decls().items()}


@pytest.fixture
def store():
    d = tempfile.mkdtemp(prefix="cloudlet-py-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def ctx(store):
    with cloudlet.Context(store_dir=store) as c:
        yield c


# ------------------------------------------------------------ ABI coverage

def test_every_header_function_is_bound():
    funcs = _header_functions()
    assert len(funcs) >= 48, funcs.keys()
    missing = sorted(set(funcs) - set(_lib.FUNCTIONS))
    assert not missing, "unbound ABI functions: %s" % missing
    extra = sorted(set(_lib.FUNCTIONS) - set(funcs))
    assert not extra, "bound but not in the header: %s" % extra
    for name, (ret, params) in funcs.items():
        restype, argtypes = _lib.FUNCTIONS[name]
        fn = getattr(L, name)
        assert fn.argtypes == argtypes and fn.restype is restype, name
        assert len(argtypes) == len(params), (name, params)
        assert (restype is None) == (ret == "void"), (name, ret)
        if ret == "const char *":
            assert restype is ctypes.c_char_p, name
        for p, t in zip(params, argtypes):
            if p.endswith("**out") or p.count("*") >= 2:
                assert issubclass(t, ctypes._Pointer), (name, p)


def test_every_header_struct_is_mirrored():
    structs = _header_structs()
    assert len(structs) == len(_lib.STRUCTS) == 21
    for cname, fields in structs.items():
        assert cname in _lib.STRUCTS, cname
        assert [f for f, _ in _lib.STRUCTS[cname]._fields_] == fields, cname


def test_struct_layout_matches_c_compiler(tmp_path):
    """sizeof/offsetof of every struct and field, as gcc sees the header."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "cloudlet.h"',
             "int main(void) {"]
    expect = []
    for cname, cls in _lib.STRUCTS.items():
        lines.append('printf("%%zu\\n", sizeof(%s));' % cname)
        expect.append(ctypes.sizeof(cls))
        for fname, _ in cls._fields_:
            lines.append('printf("%%zu\\n", offsetof(%s, %s));' % (cname, fname))
            expect.append(getattr(cls, fname).offset)
    lines += ["return 0; }"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([cc, "-I", os.path.dirname(HEADER), "-o", str(exe), str(src)], check=True)
    got = [int(x) for x in subprocess.run([str(exe)], check=True, capture_output=True,
                                          text=True).stdout.split()]
    assert got == expect


# ------------------------------------------------------------ version, errors

def test_version():
    assert cloudlet.version_string() == L.cloudlet_version_string().decode()
    assert cloudlet.version_string() == "%d.%d.%d" % cloudlet.version()
    assert cloudlet.version()[:2] == (_lib.VERSION_MAJOR, _lib.VERSION_MINOR)


def test_strerror_and_error_classes():
    assert cloudlet.strerror(-1) == "invalid argument"
    assert cloudlet.strerror(-12345) == "unknown status"
    from cloudlet import errors
    assert len(errors.ERRORS) == 15
    for status, cls in errors.ERRORS.items():
        assert issubclass(cls, cloudlet.CloudletError)
        assert not hasattr(builtins, cls.__name__), cls.__name__  # shadows no builtin
        e = errors.error_for(status, "m")
        assert type(e) is cls and e.status == status and e.name == cloudlet.strerror(status)
    e = errors.error_for(-77, "x")
    assert type(e) is cloudlet.CloudletError and e.status == -77


OPTION_INITS = [
    (_lib.ctx_options, "cloudlet_ctx_options_init"),
    (_lib.doctor_options, "cloudlet_doctor_options_init"),
    (_lib.snapshot_options, "cloudlet_snapshot_options_init"),
    (_lib.capture_options, "cloudlet_capture_options_init"),
    (_lib.base_options, "cloudlet_base_options_init"),
    (_lib.resume_options, "cloudlet_resume_options_init"),
    (_lib.overlay_options, "cloudlet_overlay_options_init"),
    (_lib.synthesis_options, "cloudlet_synthesis_options_init"),
    (_lib.handoff_options, "cloudlet_handoff_options_init"),
]


def _field_value(s, name, ftype):
    if ftype in (_lib.progress_cb, _lib.log_cb):
        return ctypes.cast(getattr(s, name), ctypes.c_void_p).value
    return getattr(s, name)


@pytest.mark.parametrize("cls,init", OPTION_INITS, ids=[i for _, i in OPTION_INITS])
def test_options_init_matches_python_defaults(cls, init):
    assert cls._fields_[0] == ("version", ctypes.c_uint)
    mine = cls.default()
    theirs = cls()
    ctypes.memset(ctypes.byref(theirs), 0xA5, ctypes.sizeof(theirs))  # garbage first
    cloudlet.errors.check(getattr(L, init)(ctypes.byref(theirs), mine.version))
    for name, ftype in cls._fields_:
        assert _field_value(theirs, name, ftype) == _field_value(mine, name, ftype), name
    # an unknown version is refused
    with pytest.raises(cloudlet.VersionError):
        cloudlet.errors.check(getattr(L, init)(ctypes.byref(cls()), 999))


def test_option_struct_version_refused_by_call(ctx):
    opts = _lib.snapshot_options.default()
    opts.version = 999
    out = ctypes.POINTER(_lib.snapshot_info)()
    st = L.cloudlet_snapshot_inspect(ctypes.byref(out), ctx._h(), b"/nonexistent", ctypes.byref(opts))
    assert st == _lib.E_VERSION and not out


# ------------------------------------------------------------ context

def test_context_settings_and_close(store):
    ctx = cloudlet.Context(store_dir=store, cpu_model="core2duo", worker_threads=3)
    s = ctx.settings()
    assert s.store_dir == store and s.cpu_model == "core2duo" and s.worker_threads == 3
    ctx.close()
    ctx.close()  # idempotent: freed exactly once
    assert ctx.closed
    with pytest.raises(ValueError):
        ctx.base_list()


def test_context_invalid_options(store):
    with pytest.raises(cloudlet.InvalidArgumentError) as ei:
        cloudlet.Context(store_dir="relative/dir")
    assert "absolute" in ei.value.message
    with pytest.raises(cloudlet.InvalidArgumentError):
        cloudlet.Context(store_dir=store, worker_threads=5000)
    with pytest.raises(cloudlet.InvalidArgumentError):
        cloudlet.Context(store_dir=store, cpu_model="bad model!")


def test_base_list_empty(ctx):
    assert ctx.base_list() == []


def test_base_show_not_found(ctx):
    with pytest.raises(cloudlet.NotFoundError) as ei:
        ctx.base_show("nope")
    e = ei.value
    assert e.status == _lib.E_NOT_FOUND and e.name == "not found"
    assert "'nope'" in e.message and "cloudlet_base_show" in e.message
    assert "nope" in str(e)


def test_base_remove_export_resume_not_found(ctx, store):
    with pytest.raises(cloudlet.NotFoundError):
        ctx.base_remove("nope")
    with pytest.raises(cloudlet.NotFoundError):
        ctx.base_export("nope", os.path.join(store, "x.pkg"))
    with pytest.raises(cloudlet.NotFoundError):
        ctx.base_resume("nope")


def test_base_import_missing_file(ctx, store):
    with pytest.raises((cloudlet.NotFoundError, cloudlet.CloudletIOError)):
        ctx.base_import(os.path.join(store, "missing.pkg"))


def test_base_package_inspect_refuses_what_is_not_a_package(ctx, store):
    with pytest.raises((cloudlet.NotFoundError, cloudlet.CloudletIOError)):
        ctx.base_package_inspect(os.path.join(store, "missing.pkg"))
    path = os.path.join(store, "garbage.pkg")
    with open(path, "wb") as f:
        f.write(b"\x00garbage" * 512)
    with pytest.raises(cloudlet.CorruptError) as ei:
        ctx.base_package_inspect(path)
    assert "magic" in ei.value.message and path in ei.value.message


def test_overlay_inspect_garbage_is_corrupt(ctx, store):
    path = os.path.join(store, "garbage.overlay")
    with open(path, "wb") as f:
        f.write(b"\x00garbage" * 512)
    with pytest.raises(cloudlet.CorruptError) as ei:
        ctx.overlay_inspect(path)
    msg = ei.value.message
    assert "offset" in msg and "magic" in msg and path in msg


def test_snapshot_inspect_garbage_is_corrupt(ctx, store):
    path = os.path.join(store, "garbage.snap")
    with open(path, "wb") as f:
        f.write(b"\x01" * 8192)
    with pytest.raises(cloudlet.CorruptError) as ei:
        ctx.snapshot_inspect(path)
    assert "offset" in ei.value.message


def test_synthesize_missing_file(ctx, store):
    path = os.path.join(store, "missing.overlay")
    with pytest.raises(cloudlet.NotFoundError) as ei:
        ctx.synthesize(path)
    assert path in ei.value.message


def test_synthesize_invalid_options(ctx, store):
    with pytest.raises(cloudlet.InvalidArgumentError) as ei:
        ctx.synthesize(os.path.join(store, "x.overlay"), threads=100000)
    assert "threads" in ei.value.message


def test_synthesize_ftp_url(ctx):
    # The library does not reject unsupported URL schemes as such: anything
    # that is not http(s):// is a file path, so "ftp://x" is a missing file.
    with pytest.raises((cloudlet.InvalidArgumentError, cloudlet.NotFoundError)) as ei:
        ctx.synthesize("ftp://x")
    assert "ftp://x" in ei.value.message


def test_overlay_create_bad_codec(ctx, store):
    with pytest.raises(cloudlet.InvalidArgumentError) as ei:
        ctx.overlay_create("no-such-domain", os.path.join(store, "o"), codec="bogus")
    assert "codec" in ei.value.message


def test_capture_missing_domain(ctx, store):
    with pytest.raises((cloudlet.NotFoundError, cloudlet.LibvirtError)):
        ctx.snapshot_capture("cloudlet-py-test-no-such-domain", os.path.join(store, "s"))


# ------------------------------------------------------------ handoff

def test_handoff_listen_and_token_permission(ctx, store):
    token = os.path.join(store, "token")
    with open(token, "w") as f:
        f.write("s" * 40)
    os.chmod(token, 0o644)
    with ctx.handoff_listen("127.0.0.1:0") as listener:
        assert listener.port > 0
        with pytest.raises(cloudlet.AccessDeniedError) as ei:
            listener.receive(token)
        assert token in ei.value.message
    assert listener.closed
    listener.close()  # idempotent


def test_listener_closed_with_context(store):
    ctx = cloudlet.Context(store_dir=store)
    listener = ctx.handoff_listen("127.0.0.1:0")
    ctx.close()
    assert listener.closed


def test_handoff_send_missing_token(ctx, store):
    with pytest.raises(cloudlet.CloudletError):
        ctx.handoff_send("no-such-domain", "127.0.0.1:1", os.path.join(store, "none"))


# ------------------------------------------------------------ progress, cancel

class Boom(Exception):
    pass


def _snapshot_file(store):
    path = os.path.join(store, "s.bin")
    with open(path, "wb") as f:
        f.write(b"\x01" * (1 << 20))
    return path


def test_progress_is_called(ctx, store):
    calls = []
    with pytest.raises(cloudlet.CorruptError):
        ctx.snapshot_inspect(_snapshot_file(store),
                             progress=lambda phase, done, total: calls.append((phase, done, total)))
    assert calls and calls[0][0] == "read" and calls[0][2] == 1 << 20


def test_progress_exception_propagates(ctx, store):
    def progress(phase, done, total):
        raise Boom("from progress")
    with pytest.raises(Boom) as ei:
        ctx.snapshot_inspect(_snapshot_file(store), progress=progress)
    # the status the library returned is chained, not lost
    assert isinstance(ei.value.__cause__, cloudlet.CancelledError)


def test_progress_true_stops(ctx, store):
    with pytest.raises(cloudlet.CancelledError):
        ctx.snapshot_inspect(_snapshot_file(store), progress=lambda *a: True)


def test_cancel_handle():
    with cloudlet.Cancel() as c:
        assert not c.triggered
        t = threading.Thread(target=c.trigger)
        t.start()
        t.join()
        assert c.triggered and c.is_triggered()
    with pytest.raises(ValueError):
        c.trigger()
    c.close()  # idempotent


def test_triggered_cancel_stops_operation(ctx, store):
    with cloudlet.Cancel() as c:
        c.trigger()
        with pytest.raises(cloudlet.CancelledError):
            ctx.snapshot_inspect(_snapshot_file(store), cancel=c)


# ------------------------------------------------------------ doctor

def test_doctor_without_boot_probe(ctx, store):
    phases = []
    try:
        report = ctx.doctor(boot_probe=False, progress=lambda p, d, t: phases.append(p))
    except cloudlet.LibvirtError as e:
        pytest.skip("no libvirtd: %s" % e)
    assert isinstance(report, cloudlet.HostReport)
    assert report.version >= 1
    assert report.libvirt_uri.startswith("qemu:///")
    assert re.match(r"\d+\.\d+", report.libvirt_version)
    assert report.store_dir == store
    assert report.store_writable == cloudlet.Tristate.YES
    assert report.cpu_model == "core2duo"
    assert report.virt_count == len(report.virt) >= 1
    for v in report.virt:
        assert isinstance(v, cloudlet.VirtReport)
        assert v.virt_type in ("kvm", "qemu")
        assert v.usable == cloudlet.Tristate.UNKNOWN  # not proven without the probe
    assert report.preferred_virt_type == ""
    assert "capabilities" in phases
    fields = [f for f, _ in _lib.host_report._fields_]
    assert [f.name for f in dataclasses.fields(report)] == fields
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.hostname = "x"


def test_doctor_bad_uri(store):
    with cloudlet.Context(libvirt_uri="nosuch:///x", store_dir=store) as ctx:
        with pytest.raises(cloudlet.LibvirtError) as ei:
            ctx.doctor()
        assert "nosuch:///x" in ei.value.message


# ------------------------------------------------------------ threads

def test_errors_are_per_thread(ctx):
    with pytest.raises(cloudlet.NotFoundError):
        ctx.base_show("main-thread-base")
    main_msg = cloudlet.last_error_message()
    assert "main-thread-base" in main_msg
    seen = {}

    def worker():
        try:
            ctx.base_show("worker-thread-base")
        except cloudlet.NotFoundError as e:
            seen["exc"] = e.message
        seen["last"] = cloudlet.last_error_message()
        seen["status"] = cloudlet.last_error_status()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert "worker-thread-base" in seen["exc"] and "worker-thread-base" in seen["last"]
    assert seen["status"] == _lib.E_NOT_FOUND
    assert cloudlet.last_error_message() == main_msg
    assert cloudlet.last_error_status() == _lib.E_NOT_FOUND


def test_success_clears_error(ctx):
    with pytest.raises(cloudlet.NotFoundError):
        ctx.base_show("nope")
    assert ctx.base_list() == []
    assert cloudlet.last_error_message() == ""
    assert cloudlet.last_error_status() == 0


def test_log_callback(store):
    lines = []
    with cloudlet.Context(store_dir=store, log=lambda lvl, msg: lines.append((lvl, msg)),
                          log_level=cloudlet.LogLevel.DEBUG) as ctx:
        ctx.base_list()
    assert all(isinstance(m, str) for _, m in lines)


# ------------------------------------------------------------ library lookup

def _run_python(code, env):
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, cwd=os.path.dirname(HERE), timeout=60)


def test_library_lookup():
    lib = os.environ["CLOUDLET_LIBRARY"]
    env = {k: v for k, v in os.environ.items() if k != "CLOUDLET_LIBRARY"}
    # normal dynamic-linker lookup of libcloudlet.so.0
    env["LD_LIBRARY_PATH"] = os.path.dirname(lib)
    r = _run_python("import cloudlet; print(cloudlet.version_string())", env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == cloudlet.version_string()
    # CLOUDLET_LIBRARY overrides it
    env["CLOUDLET_LIBRARY"] = "/nonexistent/libcloudlet.so.0"
    r = _run_python("import cloudlet", env)
    assert r.returncode != 0 and "/nonexistent/libcloudlet.so.0" in r.stderr


def test_cancel_reaches_a_synthesis_blocked_on_the_network(ctx):
    """A server that accepts and then sends nothing: the read blocks; a
    cancel must end it at once, not at the stall timeout (~35 s)."""
    import socket
    import time
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    held = []

    def accept():
        with contextlib.suppress(OSError):
            while True:
                c, _ = srv.accept()
                c.recv(65536)  # the request; then silence
                held.append(c)
    threading.Thread(target=accept, daemon=True).start()
    cancel = cloudlet.Cancel()
    threading.Timer(1.0, cancel.trigger).start()
    t = time.monotonic()
    try:
        with pytest.raises(cloudlet.CancelledError):
            ctx.synthesize("http://127.0.0.1:%d/x.ovl" % srv.getsockname()[1], cancel=cancel)
        took = time.monotonic() - t
        assert took < 5, "cancel took %.1f s" % took
    finally:
        cancel.close()
        srv.close()
        for c in held:
            c.close()


def test_handoff_token_check(tmp_path):
    good = tmp_path / "good"
    good.write_bytes(b"x" * 40 + b"\n")
    os.chmod(good, 0o600)
    assert cloudlet.handoff_token_check(str(good)) is None
    short = tmp_path / "short"
    short.write_bytes(b"x" * 31)
    os.chmod(short, 0o600)
    with pytest.raises(cloudlet.InvalidArgumentError) as e:
        cloudlet.handoff_token_check(str(short))
    assert "32" in e.value.message
    os.chmod(good, 0o644)
    with pytest.raises(cloudlet.AccessDeniedError) as e:
        cloudlet.handoff_token_check(str(good))
    assert "chmod 600" in e.value.message
    with pytest.raises((cloudlet.NotFoundError, cloudlet.CloudletIOError)):
        cloudlet.handoff_token_check(str(tmp_path / "missing"))


def test_handoff_receive_check(tmp_path):
    """The receiver's credentials checked as a receive would read them:
    TLS-PSK by default, X.509 from a certificate directory, and a token file
    over 4 KiB is refused rather than cut."""
    tok = tmp_path / "token"
    tok.write_bytes(b"y" * 44)
    os.chmod(tok, 0o600)
    assert cloudlet.HandoffSecurity.TLS_PSK == 0
    assert cloudlet.handoff_receive_check(str(tok)) is None
    assert cloudlet.handoff_receive_check(str(tok), security=cloudlet.HandoffSecurity.PLAINTEXT_UNSAFE) is None
    big = tmp_path / "big"
    big.write_bytes(b"z" * 5000)
    os.chmod(big, 0o600)
    with pytest.raises(cloudlet.InvalidArgumentError) as e:
        cloudlet.handoff_receive_check(str(big))
    assert "4 KiB" in e.value.message
    with pytest.raises(ValueError):  # X.509 without a directory
        cloudlet.handoff_receive_check(security=cloudlet.HandoffSecurity.TLS_X509)
    with pytest.raises(ValueError):  # a token and a directory together
        cloudlet.handoff_receive_check(str(tok), security=cloudlet.HandoffSecurity.TLS_X509, tls_dir=str(tmp_path))
    pki = tmp_path / "pki"
    make = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "make-test-pki.sh")
    subprocess.run([make, str(pki)], check=True)
    assert cloudlet.handoff_receive_check(security=cloudlet.HandoffSecurity.TLS_X509,
                                          tls_dir=str(pki / "good")) is None
    os.unlink(pki / "good" / "server-key.pem")
    with pytest.raises(cloudlet.CloudletError) as e:
        cloudlet.handoff_receive_check(security=cloudlet.HandoffSecurity.TLS_X509, tls_dir=str(pki / "good"))
    assert "server-key.pem" in e.value.message


# ------------------------------------------------------------ typing contract

from cloudlet import _convert  # noqa: E402

SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))
PACKAGE = os.path.join(SOURCE, "python-ctypes", "cloudlet")
_INTS = (ctypes.c_uint, ctypes.c_int, ctypes.c_uint64, ctypes.c_size_t)


def _mentions_any(hint):
    if hint is typing.Any:
        return True
    return any(_mentions_any(a) for a in typing.get_args(hint))


def _expected_hint(struct_cls, name, ctype, decl):
    """The Python type a field of this C type and declaration must have."""
    arrays = getattr(struct_cls, "_arrays_", {})
    if name in arrays:
        target = ctype._type_
        if target is ctypes.c_char_p:
            elem = typing.Optional[str]
        elif issubclass(target, ctypes._Pointer):
            elem = typing.Optional[_convert.result_class(target._type_)]
        elif issubclass(target, ctypes.Structure):
            elem = _convert.result_class(target)
        else:
            assert target in _INTS, (name, target)
            elem = int
        return tuple[elem, ...]
    if ctype is ctypes.c_char_p:
        return typing.Optional[str]
    if issubclass(ctype, ctypes.Array):
        assert ctype._type_ in _INTS, (name, ctype)
        return tuple[int, ...]
    if decl.startswith("cloudlet_tristate "):
        return cloudlet.Tristate
    if ctype is ctypes.c_double:
        return float
    assert ctype in _INTS, (name, ctype)
    return int


def test_result_dataclasses_have_real_type_hints():
    """Every result field is typed from its C declaration, never Any."""
    decls = _header_struct_decls()
    results = {cname: cls for cname, cls in _lib.STRUCTS.items()
               if cls in _convert._CLASSES}
    assert len(results) == 12  # the 21 structs less the 9 option structs
    for cname, struct_cls in results.items():
        cls = _convert.result_class(struct_cls)
        assert getattr(cloudlet, cls.__name__) is cls and cls.__name__ in cloudlet.__all__
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cname
        hints = typing.get_type_hints(cls)  # resolves: no dangling names
        assert list(hints) == [f.name for f in dataclasses.fields(cls)]
        assert list(hints) == [f[0] for f in struct_cls._fields_], cname
        decl = dict(decls[cname])
        for field in struct_cls._fields_:
            name, ctype = field[0], field[1]
            assert not _mentions_any(hints[name]), (cname, name, hints[name])
            want = _expected_hint(struct_cls, name, ctype, decl[name])
            assert hints[name] == want, (cname, name, hints[name], want)
    settings = typing.get_type_hints(cloudlet.Settings)
    assert settings == {"libvirt_uri": str, "store_dir": str, "cpu_model": str,
                        "worker_threads": int}


def _fill(struct_cls, keep, depth=0):
    """A ctypes struct with every field set (strings, counts, arrays), as the
    library hands them out."""
    s = struct_cls()
    arrays = getattr(struct_cls, "_arrays_", {})
    for i, field in enumerate(struct_cls._fields_):
        name, ctype = field[0], field[1]
        if name in arrays.values() or name in arrays:
            continue
        if ctype is ctypes.c_char_p:
            b = ("%s-%d" % (name, depth)).encode()
            keep.append(b)
            setattr(s, name, b)
        elif issubclass(ctype, ctypes.Array):
            setattr(s, name, ctype(*range(1, len(ctype()) + 1)))
        elif ctype is ctypes.c_double:
            setattr(s, name, i + 0.5)
        elif ctype is ctypes.c_int:
            setattr(s, name, 1)  # a valid tri-state and a valid flag
        else:
            setattr(s, name, i)
    for name, count in arrays.items():
        ctype = dict((f[0], f[1]) for f in struct_cls._fields_)[name]
        target = ctype._type_
        n = 2
        if target is ctypes.c_char_p:
            items = [b"%s-%d" % (name.encode(), k) for k in range(n)]
            keep.extend(items)
            arr = (ctypes.c_char_p * n)(*items)
        elif issubclass(target, ctypes._Pointer):
            elems = [_fill(target._type_, keep, depth + 1) for _ in range(n)]
            keep.extend(elems)
            arr = (target * n)(*[ctypes.pointer(e) for e in elems])
        elif issubclass(target, ctypes.Structure):
            arr = (target * n)(*[_fill(target, keep, depth + 1) for _ in range(n)])
        else:
            arr = (target * n)(*range(7, 7 + n))
        keep.append(arr)
        setattr(s, name, ctypes.cast(arr, ctype))
        setattr(s, count, n)
    return s


def _conforms(value, hint):
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in typing.get_args(hint))
    if origin is tuple:
        elem = typing.get_args(hint)[0]
        return isinstance(value, tuple) and all(_conforms(v, elem) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return type(value) is float
    if hint is int:
        return type(value) is int  # a plain int, not a bool or a ctypes value
    return isinstance(value, hint)


@pytest.mark.parametrize("struct_cls", list(_convert._CLASSES),
                         ids=[c.__name__ for c in _convert._CLASSES])
def test_copied_results_have_the_hinted_types(struct_cls):
    keep = []
    s = _fill(struct_cls, keep)
    result = _convert.copy(s)
    cls = _convert.result_class(struct_cls)
    assert type(result) is cls
    hints = typing.get_type_hints(cls)
    for name, hint in hints.items():
        value = getattr(result, name)
        assert _conforms(value, hint), (cls.__name__, name, value, hint)
        if name in getattr(struct_cls, "_arrays_", {}):
            assert len(value) == 2, (name, value)
    hash(result)  # frozen all the way down: tuples, not lists
    assert pickle.loads(pickle.dumps(result)) == result


def test_tristate_out_of_range_is_unknown():
    keep = []
    s = _fill(_lib.virt_report, keep)
    s.offered, s.usable, s.cpu_model_usable = 7, 0, -1
    r = _convert.copy(s)
    assert r.offered is cloudlet.Tristate.UNKNOWN
    assert r.usable is cloudlet.Tristate.NO and r.cpu_model_usable is cloudlet.Tristate.UNKNOWN


def _public_callables():
    """(qualified name, function) of every public function and method."""
    out = []
    for name in cloudlet.__all__:
        obj = getattr(cloudlet, name)
        if inspect.isfunction(obj):
            out.append((name, obj))
        elif inspect.isclass(obj) and obj.__module__.startswith("cloudlet") \
                and not dataclasses.is_dataclass(obj) and not issubclass(obj, BaseException):
            for mname, m in vars(obj).items():
                if mname.startswith("_") and mname != "__init__":
                    continue
                if isinstance(m, property):
                    m = m.fget
                if inspect.isfunction(m):
                    out.append(("%s.%s" % (name, mname), m))
    return out


def test_public_functions_have_type_hints():
    funcs = _public_callables()
    names = {n for n, _ in funcs}
    assert {"version", "handoff_token_check", "Context.__init__", "Context.synthesize",
            "Listener.receive", "Listener.port", "Cancel.trigger"} <= names, names
    for name, fn in funcs:
        hints = typing.get_type_hints(fn)  # every annotation resolves
        params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
        missing = [p.name for p in params if p.name not in hints]
        assert not missing, (name, missing)
        assert "return" in hints, name
        for p, h in hints.items():
            assert not _mentions_any(h), (name, p, h)


def _mypy():
    r = subprocess.run([sys.executable, "-m", "mypy", "--version"], capture_output=True)
    if r.returncode != 0:
        pytest.skip("mypy is not installed (Debian: python3-mypy; scripts/setup-host installs it)")


def _run_mypy(args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--cache-dir=/dev/null", "--no-color-output", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_mypy_strict_on_the_package():
    _mypy()
    r = _run_mypy(["-p", "cloudlet"], cwd=os.path.dirname(PACKAGE))
    assert r.returncode == 0, r.stdout + r.stderr


USER_PROGRAM = '''\
import cloudlet

def check(ctx: cloudlet.Context) -> int:
    report = ctx.doctor()
    reveal_type(report.virt)
    reveal_type(report.libvirt_uri)
    reveal_type(report.virt[0].usable)
    reveal_type(cloudlet.__version__)
    reveal_type(ctx.base_list())
    return report.store_free_bytes
'''


def test_py_typed_is_shipped_and_installed(tmp_path):
    """The marker is in the package, debian/python3-cloudlet.install installs
    it, and a type checker uses the installed package's hints because of it
    (without it mypy ignores the package: the test can tell)."""
    assert os.path.isfile(os.path.join(PACKAGE, "py.typed"))
    _mypy()
    # install as the Debian package does, into a fresh environment
    with open(os.path.join(SOURCE, "debian", "python3-cloudlet.install")) as f:
        rules = [line.split() for line in f if line.strip() and not line.startswith("#")]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    installed = False
    for src, dest in rules:
        if dest.rstrip("/").endswith("dist-packages") and src.startswith("python-ctypes/"):
            shutil.copytree(os.path.join(SOURCE, src),
                            os.path.join(site, os.path.basename(src.rstrip("/"))))
            installed = True
    assert installed, rules
    assert os.path.isfile(os.path.join(site, "cloudlet", "py.typed"))
    prog = tmp_path / "user.py"
    prog.write_text(USER_PROGRAM)
    args = ["--python-executable", str(venv / "bin" / "python"), str(prog)]
    r = _run_mypy(args, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert 'Revealed type is "builtins.tuple[cloudlet._convert.VirtReport, ...]"' in out, out
    assert 'Revealed type is "Union[builtins.str, None]"' in out, out
    assert 'Revealed type is "cloudlet._convert.Tristate"' in out, out
    assert 'Revealed type is "builtins.str"' in out, out
    assert 'Revealed type is "builtins.list[cloudlet._convert.BaseInfo]"' in out, out
    os.unlink(os.path.join(site, "cloudlet", "py.typed"))
    r = _run_mypy(args, cwd=str(tmp_path))
    assert r.returncode != 0 and "py.typed" in r.stdout, r.stdout


# ------------------------------------------------------------ __version__

def test_dunder_version():
    v = cloudlet.__version__
    assert isinstance(v, str) and "__version__" in cloudlet.__all__
    header = {m.group(1): int(m.group(2)) for m in
              re.finditer(r"#define CLOUDLET_VERSION_(MAJOR|MINOR|PATCH) (\d+)", _header())}
    assert v == "%(MAJOR)d.%(MINOR)d.%(PATCH)d" % header
    with open(os.path.join(SOURCE, "meson.build")) as f:
        project = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", f.read(), re.S).group(1)
    assert v == project
    # the run-time library of the same release reports the same version
    assert cloudlet.version()[:2] == tuple(int(x) for x in v.split(".")[:2])


# ------------------------------------------------------------ exceptions

# status -> the built-in its exception also derives from (None: none)
BUILTIN_OF = {
    _lib.E_INVALID_ARG: ValueError,
    _lib.E_NOMEM: MemoryError,
    _lib.E_VERSION: None,
    _lib.E_IO: OSError,
    _lib.E_LIBVIRT: None,
    _lib.E_NOT_FOUND: LookupError,
    _lib.E_EXISTS: None,
    _lib.E_CORRUPT: None,
    _lib.E_UNSUPPORTED: None,
    _lib.E_HOST: None,
    _lib.E_CANCELLED: None,
    _lib.E_TIMEOUT: TimeoutError,
    _lib.E_PERMISSION: PermissionError,
    _lib.E_BUSY: None,
    _lib.E_INTERNAL: None,
}


def test_exceptions_subclass_the_matching_builtins():
    from cloudlet import errors
    assert set(BUILTIN_OF) == set(errors.ERRORS)
    builtin_excs = [v for v in vars(builtins).values()
                    if isinstance(v, type) and issubclass(v, BaseException)]
    for status, cls in errors.ERRORS.items():
        want = BUILTIN_OF[status]
        got = [b for b in cls.__mro__ if b in builtin_excs and b not in (Exception, BaseException)]
        if want is None:
            assert got == [], (cls, got)
        else:
            assert got[0] is want, (cls, got)  # the most specific built-in is that one
            e = errors.error_for(status, "m")
            assert isinstance(e, want) and isinstance(e, cloudlet.CloudletError)
            assert str(e) == "m (%s)" % cloudlet.strerror(status)
    assert issubclass(cloudlet.AccessDeniedError, OSError)  # as PermissionError is
    assert issubclass(cloudlet.DeadlineError, OSError)      # as TimeoutError is


def test_builtin_classes_catch_real_library_errors(ctx, store, tmp_path):
    with pytest.raises(LookupError) as ei:
        ctx.base_show("nope")
    assert type(ei.value) is cloudlet.NotFoundError and "'nope'" in ei.value.message
    with pytest.raises(ValueError) as ei:
        cloudlet.Context(store_dir="relative/dir")
    assert type(ei.value) is cloudlet.InvalidArgumentError
    token = tmp_path / "token"
    token.write_bytes(b"t" * 40)
    os.chmod(token, 0o644)
    with pytest.raises(PermissionError) as ei:
        cloudlet.handoff_token_check(str(token))
    assert type(ei.value) is cloudlet.AccessDeniedError and ei.value.status == _lib.E_PERMISSION
    # an OSError subclass keeps the binding's str() and carries no errno
    assert str(token) in str(ei.value) and ei.value.errno is None


def _same_error(a, b):
    assert type(a) is type(b)
    assert (a.status, a.name, a.message, str(a), repr(a), a.args) == \
        (b.status, b.name, b.message, str(b), repr(b), b.args)


def test_exceptions_survive_pickle():
    from cloudlet import errors
    cases = [errors.error_for(s, "cloudlet_x: failed at '%s'" % s) for s in errors.ERRORS]
    cases += [errors.error_for(-77, "unknown"), errors.error_for(_lib.E_IO, ""),
              cloudlet.CloudletError(-5, "m", name="custom name")]
    for e in cases:
        for proto in range(pickle.HIGHEST_PROTOCOL + 1):
            _same_error(pickle.loads(pickle.dumps(e, protocol=proto)), e)
    e = errors.error_for(_lib.E_NOT_FOUND, "m")
    e.add_note("a note")
    e.extra = 42
    back = pickle.loads(pickle.dumps(e))
    assert back.__notes__ == ["a note"] and back.extra == 42


def test_raised_library_error_survives_pickle(ctx):
    with pytest.raises(cloudlet.NotFoundError) as ei:
        ctx.base_show("pickled-base")
    back = pickle.loads(pickle.dumps(ei.value))
    _same_error(back, ei.value)
    assert "pickled-base" in back.message


# ------------------------------------------------------------ NUL in strings

NUL = "ab\0cd"


def _string_params(fn):
    """Parameters of fn annotated to take a string."""
    out = []
    for name, hint in typing.get_type_hints(fn).items():
        if name == "return":
            continue
        args = typing.get_args(hint) or (hint,)
        if str in args:
            out.append(name)
    return out


def _call_with(obj, name, fn, param, value):
    sig = inspect.signature(fn)
    kwargs = {}
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        if p.name == param:
            kwargs[p.name] = value
        elif p.default is inspect.Parameter.empty:
            kwargs[p.name] = "dummy"
    if name.endswith(".__init__"):
        return obj(**kwargs)
    return fn(obj, **kwargs) if obj is not None else fn(**kwargs)


def test_every_string_argument_refuses_nul(ctx, store):
    """Passed on, "ab\\0cd" would reach the library as "ab": every string
    argument of every public function is refused with InvalidArgumentError (a
    ValueError) naming the argument, before anything is called."""
    listener = ctx.handoff_listen("127.0.0.1:0")
    owners = {"Context": ctx, "Listener": listener}
    seen = 0
    try:
        for name, fn in _public_callables():
            for param in _string_params(fn):
                cls_name = name.split(".")[0]
                if name.endswith(".__init__"):
                    obj = getattr(cloudlet, cls_name)
                else:
                    obj = owners.get(cls_name) if "." in name else None
                values = [NUL]
                if bytes in typing.get_args(typing.get_type_hints(fn)[param]):  # CString
                    values += [NUL.encode(), pathlib.PurePosixPath("/tmp/" + NUL)]
                for value in values:
                    with pytest.raises(ValueError) as ei:
                        _call_with(obj, name, fn, param, value)
                    e = ei.value
                    assert type(e) is cloudlet.InvalidArgumentError, (name, param, e)
                    assert e.status == _lib.E_INVALID_ARG
                    assert "NUL" in e.message and param in e.message, (name, param, e.message)
                    seen += 1
    finally:
        listener.close()
    # what the loop covered, at least: every path, name and option string
    assert seen >= 70, seen


def test_nul_is_refused_not_cut(ctx, store):
    """The old behaviour: "nope\\0x" reached the library as "nope"."""
    with pytest.raises(cloudlet.InvalidArgumentError) as ei:
        ctx.base_show("nope\0x")
    assert "base" in ei.value.message and "byte 4" in ei.value.message
    token = os.path.join(store, "token")
    with open(token, "w") as f:
        f.write("t" * 40)
    os.chmod(token, 0o600)
    cloudlet.handoff_token_check(token)
    with pytest.raises(ValueError):
        cloudlet.handoff_token_check(token + "\0.ignored")
    with pytest.raises(ValueError):
        cloudlet.Context(store_dir=store + "\0/elsewhere")
    assert _convert.c_str("plain", "x") == b"plain" and _convert.c_str(None, "x") is None
