"""Tests of the cloudlet ctypes binding. No VMs needed.

Run:  cd /work/main && CLOUDLET_LIBRARY=/work/main/build/src/libcloudlet.so.0 \
      /usr/bin/python3 -m pytest -q python-ctypes
"""

import builtins
import contextlib
import ctypes
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

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


def _header_structs():
    """{struct name: [field names]} of every struct defined in the header."""
    text = _strip_comments(_header())
    out = {}
    for m in re.finditer(r"typedef\s+struct\s+(cloudlet_\w+)\s*\{(.*?)\}\s*\1\s*;", text, re.S):
        names = []
        for decl in m.group(2).split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            parts = decl.split(",")
            for i, d in enumerate(parts):
                d = re.sub(r"\[[^\]]*\]", "", d).strip()
                names.append(re.findall(r"\w+", d)[-1])
        out[m.group(1)] = names
    return out


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
