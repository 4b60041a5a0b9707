"""Fault injection: the cloudlet tool killed with SIGKILL at random points of
base create, overlay create, synthesis and handoff (either side), many
times, against the real libvirtd and the test guest. After each kill the
next run of the tool (any command: here `base list`) recovers the store
(src/ops/recovery.h), and then:

- no journal or work folder is left in the store's tmp/, every base
  verifies, and no half-made base, overlay or instance is left: each
  operation either completed (and its result is whole) or left nothing;
- a VM the operation paused (base create's and overlay create's source, the
  handoff's source) runs again, with its state (a checksum from inside);
- a handoff leaves the VM running on at least one side, never on none.

SIGINT (Ctrl-C) at random points of base create, base import, base verify,
overlay create, synthesis and handoff (either side): the tool exits 130
within a second, and it has undone what it made by itself (nothing left for
recovery), the paused VM running again with its state.

Disk-full and permission errors are checked for clear messages and for
leaving nothing. Hostile peers at a listening destination (200 idle
connections, slow drips, garbage, huge lengths, connect/close loops, a wrong
token, a replayed session) do not hold up a handoff started among them: it
takes at most 1.2x its unloaded time (the faster of two attacked runs
against the slower of two unloaded ones), the receiver's fds and RSS stay
bounded, every refused connection is one log line (a source of another
protocol version is in tests/unit/test_handoff_gate.cc: Python's ssl cannot
speak TLS with an external PSK). docs/reliability.md records the figures.

Trials per operation: $CLOUDLET_FAULT_TRIALS (default 5); the random seed
is printed and taken from $CLOUDLET_FAULT_SEED when set.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "harness"))
import harness  # noqa: E402

CLI = os.environ.get("CLOUDLET_CLI") or os.path.join(
    os.path.dirname(os.path.dirname(os.environ["CLOUDLET_LIBRARY"])), "tools", "cloudlet", "cloudlet")
TRIALS = int(os.environ.get("CLOUDLET_FAULT_TRIALS", "5"))
SEED = int(os.environ.get("CLOUDLET_FAULT_SEED", str(int(time.time()))))
RUN = "/var/lib/cloudlet-test/faults-%d" % os.getpid()
PREFIX = "cltest-%d-" % os.getpid()  # the harness sweeps these if we crash
STATS = {}


def cli(*args, store=None, check=True, timeout=600):
    r = subprocess.run([CLI, "--quiet", "--store", store or RUN + "/store"] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("cloudlet %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr))
    return r


def timed(*args, store=None):
    t = time.monotonic()
    cli(*args, store=store)
    return time.monotonic() - t


def killed(delay, *args, store=None):
    """Starts the tool, SIGKILLs it after `delay` seconds unless it ended.
    Returns True if it was killed, False if it finished first (exit 0)."""
    p = subprocess.Popen([CLI, "--quiet", "--store", store or RUN + "/store"] + list(args),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        p.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        return True
    assert p.returncode == 0, p.stderr.read()
    return False


# SIGINT -> exit: "every long operation stops within 1 s of cancel or SIGINT,
# undoing what it made" (issue 18), the undoing included. The one exception:
# libvirt's restore call cannot be interrupted while it starts QEMU, and a
# cancel that lands there waits until libvirt has started QEMU and torn it
# down again, then the undo (measured 1.3 to 2.6 s here; destroying the
# domain or killing QEMU does not shorten it): synthesis and a receiving
# handoff get that (docs/reliability.md "Interrupted").
INTERRUPT_BOUND_S = 1.0
RESTORE_BOUND_S = 3.0


def interrupted(delay, *args, store=None):
    """Starts the tool, SIGINTs it after `delay` seconds unless it ended.
    Returns (exit code, seconds from the signal to the exit or None if it
    ended first, stderr)."""
    p = subprocess.Popen([CLI, "--quiet", "--store", store or RUN + "/store"] + list(args),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        p.wait(timeout=delay)
        return p.returncode, None, p.stderr.read()
    except subprocess.TimeoutExpired:
        pass
    t = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise AssertionError("cloudlet %s still ran 60 s after SIGINT" % " ".join(args))
    return p.returncode, time.monotonic() - t, p.stderr.read()


def left_by_itself(store):
    """What an interrupted run left in the store's tmp/ (before any recovery)."""
    tmp = os.path.join(store, "tmp")
    return sorted(os.listdir(tmp)) if os.path.isdir(tmp) else []


def domain_state(name):
    r = subprocess.run(["virsh", "-q", "-c", "qemu:///system", "domstate", name],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def destroy(name):
    subprocess.run(["virsh", "-q", "-c", "qemu:///system", "destroy", name], capture_output=True)


def recovered_and_clean(store):
    """The next run recovers; then nothing of the killed run is left."""
    before = os.listdir(os.path.join(store, "tmp")) if os.path.isdir(os.path.join(store, "tmp")) else []
    STATS.setdefault("left for recovery", [0, 0])
    STATS["left for recovery"][0] += sum(1 for n in before if n.startswith("journal-"))
    STATS["left for recovery"][1] += sum(1 for n in before if not n.startswith("journal-"))
    listed = json.loads(cli("--json", "base", "list", store=store).stdout)
    tmp = os.path.join(store, "tmp")
    left = sorted(os.listdir(tmp))
    if left:
        detail = subprocess.run([CLI, "--verbose", "--store", store, "base", "list"],
                                capture_output=True, text=True).stderr
        journals = {n: open(os.path.join(tmp, n)).read() for n in left if n.startswith("journal-")}
        raise AssertionError("left in %s after recovery: %s %s; a second run says: %s" % (
            tmp, left, journals, detail))
    for b in listed:
        shown = json.loads(cli("--json", "base", "show", b["id"], "--verify", store=store).stdout)
        assert shown["status"] == "ok", shown
    return listed


def delays(duration):
    rnd = random.Random("%d-%d" % (SEED, int(duration * 1000)))
    return [rnd.uniform(0.05, duration * 1.1) for _ in range(TRIALS)]


def record(kind, was_killed):
    s = STATS.setdefault(kind, [0, 0])
    s[0 if was_killed else 1] += 1


@pytest.fixture(scope="module")
def world():
    harness.setup()
    os.makedirs(RUN, exist_ok=True)
    for d in ("/var/lib/cloudlet-test", RUN):
        os.chmod(d, 0o755)
    print("fault-injection seed %d, %d trials per operation" % (SEED, TRIALS))
    g = harness.Guest.start("faultsrc")
    g.check("dd if=/dev/urandom of=/ram/state bs=1M count=2 2>/dev/null")
    src_sum = g.check("md5sum /ram/state")
    base = json.loads(cli("--json", "base", "create", g.domain, "--name", "fbase").stdout)["id"]
    # A second cloudlet (store) with the same base, for handoffs.
    cli("base", "export", "fbase", RUN + "/fbase.pkg")
    cli("base", "import", RUN + "/fbase.pkg", store=RUN + "/store2")
    os.unlink(RUN + "/fbase.pkg")
    yield dict(guest=g, sum=src_sum, base=base)
    g.close()
    for d in subprocess.run(["virsh", "-q", "-c", "qemu:///system", "list", "--all", "--name"],
                            capture_output=True, text=True).stdout.split():
        if d.startswith(PREFIX):
            destroy(d)
    shutil.rmtree(RUN, ignore_errors=True)
    print("fault-injection figures (per operation: [killed, finished first]; "
          "'left for recovery': [journals, work folders]): %s" % STATS)


def launch_instance(name):
    """An instance of the base with some state of its own; its checksum."""
    cli("base", "resume", "fbase", "--name", name)
    g = harness.Guest.attach(name)
    g.check("dd if=/dev/urandom of=/ram/app bs=1M count=2 2>/dev/null")
    return g, g.check("md5sum /ram/app")


def test_base_create_killed(world):
    g = world["guest"]
    duration = timed("base", "create", g.domain, "--name", "fb-timing")
    cli("base", "remove", "fb-timing")
    for i, delay in enumerate(delays(duration)):
        name = "fb-%d" % i
        record("base create", killed(delay, "base", "create", g.domain, "--name", name))
        listed = recovered_and_clean(RUN + "/store")
        assert domain_state(g.domain) == "running", "the source VM was left %s" % domain_state(g.domain)
        assert g.check("md5sum /ram/state") == world["sum"]
        if any(b["name"] == name for b in listed):
            cli("base", "remove", name)  # completed: whole (verified above)


def test_overlay_create_killed(world):
    g, app = launch_instance(PREFIX + "ovl")
    out = RUN + "/killed.ovl"
    duration = timed("overlay", "create", PREFIX + "ovl", out)
    os.unlink(out)
    for delay in delays(duration):
        record("overlay create", killed(delay, "overlay", "create", PREFIX + "ovl", out))
        recovered_and_clean(RUN + "/store")
        assert not os.path.exists(out + ".part")
        if os.path.exists(out):
            cli("overlay", "info", out)  # complete: it reads and verifies
            os.unlink(out)
        assert domain_state(PREFIX + "ovl") == "running"
        assert g.check("md5sum /ram/app") == app
    cli("overlay", "create", PREFIX + "ovl", RUN + "/app.ovl")  # for the synthesis trials
    g.close()
    cli("instance", "remove", PREFIX + "ovl")


def test_synthesis_killed(world):
    overlay = RUN + "/app.ovl"
    assert os.path.exists(overlay)
    name = PREFIX + "syn"
    duration = timed("synthesize", overlay, "--name", name)
    destroy(name)
    cli("instance", "remove", name)
    instances = RUN + "/store/instances"
    for delay in delays(duration):
        record("synthesize", killed(delay, "synthesize", overlay, "--name", name))
        recovered_and_clean(RUN + "/store")
        state = domain_state(name)
        if state is None:  # undone: nothing of it is left
            assert not os.path.exists(os.path.join(instances, name))
        else:  # completed: it runs and answers
            assert state == "running"
            g = harness.Guest.attach(name)
            g.check("true")
            g.close()
            cli("instance", "remove", name)
        assert not os.path.exists(os.path.join(instances, name))


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _token():
    path = RUN + "/token"
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(os.urandom(48))
        os.chmod(path, 0o600)
    return path


def _handoff_trial(i, delay, kill_sender):
    src, dst = PREFIX + "ho-%d" % i, PREFIX + "hd-%d" % i
    g, app = launch_instance(src)
    port = _free_port()
    receiver = subprocess.Popen([CLI, "--quiet", "--store", RUN + "/store2", "handoff", "receive",
                                 "--listen", "127.0.0.1:%d" % port, "--token-file", _token(), "--once",
                                 "--name", dst, "--timeout", "20"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    # A killed receiver does not come back: the sender's reconnects (docs/protocols/handoff.md
    # "Resume") find nobody, and after the window it runs on. A short window keeps the trials
    # short; the outcome is the same with the default 30 s.
    send = [CLI, "--quiet", "--store", RUN + "/store", "handoff", "send", src, "127.0.0.1:%d" % port,
            "--token-file", _token(), "--timeout", "20", "--resume-window", "3"]
    sender = subprocess.Popen(send, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victim = sender if kill_sender else receiver
    t0 = time.monotonic()
    try:
        victim.wait(timeout=delay)
        was_killed = False
    except subprocess.TimeoutExpired:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        was_killed = True
    elapsed = time.monotonic() - t0
    for p in (sender, receiver):
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    recovered_and_clean(RUN + "/store")
    recovered_and_clean(RUN + "/store2")
    at_src, at_dst = domain_state(src), domain_state(dst)
    assert "running" in (at_src, at_dst), "the VM runs nowhere: source %s, destination %s" % (at_src, at_dst)
    if at_src is not None:
        assert at_src == "running", "the source is %s" % at_src
        assert g.check("md5sum /ram/app") == app  # on the shell channel held since the start
    if at_dst is not None:
        assert at_dst == "running", "the destination is %s" % at_dst
        h = harness.Guest.attach(dst)
        assert h.check("md5sum /ram/app") == app
        h.close()
    g.close()
    for name, store in ((src, "/store"), (dst, "/store2")):
        cli("instance", "remove", name, store=RUN + store, check=False)
    return was_killed, at_src, at_dst, elapsed


def test_handoff_sender_killed(world):
    duration = _handoff_trial(99, 600, True)[3]  # unkilled: how long the sender takes
    outcomes = []
    for i, delay in enumerate(delays(duration)):
        was_killed, at_src, at_dst, _ = _handoff_trial(i, delay, True)
        record("handoff send", was_killed)
        outcomes.append((round(delay, 2), at_src, at_dst))
    print("handoff sender killed at (s, source, destination): %s" % outcomes)


def test_handoff_receiver_killed(world):
    # The receiver is killed a random time after the sender started.
    duration = _handoff_trial(199, 600, True)[3]
    for i, delay in enumerate(delays(duration)):
        was_killed = _handoff_trial(100 + i, delay, False)[0]
        record("handoff receive", was_killed)


def _interrupt_trials(what, run, undo_result, check_after, bound=INTERRUPT_BOUND_S, span=0.9):
    """`run(delay)` -> (rc, seconds or None, stderr) for seeded delays over the
    first `span` of the operation's duration (a first, uninterrupted run times it)."""
    t = time.monotonic()
    rc, secs, err = run(600)
    assert rc == 0 and secs is None, err
    duration = time.monotonic() - t
    undo_result()
    outcomes = []
    rnd = random.Random("%d-%s" % (SEED, what))
    for _ in range(TRIALS):
        delay = rnd.uniform(0.05, duration * span)
        rc, secs, err = run(delay)
        outcomes.append((round(delay, 2), rc, None if secs is None else round(secs, 2)))
        if secs is not None:
            # Past its last check point an operation completes (exit 0, its result whole; a
            # handoff's source cleanup after RUNNING, for one): that is not a stop.
            assert rc in (0, 130), "%s interrupted after %.2f s: exit %d: %s" % (what, delay, rc, err)
            if rc == 130:
                assert secs <= bound, "%s took %.2f s to stop after SIGINT (at %.2f s)" % (what, secs, delay)
        else:
            assert rc == 0, err
        if rc == 0:  # it finished
            undo_result()
        check_after(rc == 130)
    STATS.setdefault("SIGINT -> exit (delay s, exit, s)", {})[what] = outcomes
    return outcomes


def test_interrupt_stops_every_operation_within_a_second(world):
    store, store3 = RUN + "/store", RUN + "/store3"
    g = world["guest"]
    gi, app = launch_instance(PREFIX + "int")
    pkg, ovl, ovl2 = RUN + "/int.pkg", RUN + "/int.ovl", RUN + "/int2.ovl"
    cli("base", "export", "fbase", pkg)
    cli("overlay", "create", PREFIX + "int", ovl)

    def nothing_left(st):
        assert left_by_itself(st) == [], "an interrupted run left %s" % left_by_itself(st)

    def bases(st):
        return {b["name"] for b in json.loads(cli("--json", "base", "list", store=st).stdout)}

    def base_create_after(was_interrupted):
        nothing_left(store)
        assert domain_state(g.domain) == "running"
        assert g.check("md5sum /ram/state") == world["sum"]
        if was_interrupted:
            assert "fi-int" not in bases(store)
    _interrupt_trials("base create",
                      lambda d: interrupted(d, "base", "create", g.domain, "--name", "fi-int"),
                      lambda: cli("base", "remove", "fi-int"), base_create_after)

    def import_after(was_interrupted):
        nothing_left(store3)
        if was_interrupted:
            assert bases(store3) == set()
    _interrupt_trials("base import", lambda d: interrupted(d, "base", "import", pkg, store=store3),
                      lambda: cli("base", "remove", "fbase", store=store3), import_after)

    _interrupt_trials("base show --verify", lambda d: interrupted(d, "base", "show", "fbase", "--verify"),
                      lambda: None, lambda was: nothing_left(store))

    def overlay_after(was_interrupted):
        nothing_left(store)
        assert not os.path.exists(ovl2 + ".part")
        if was_interrupted:
            assert not os.path.exists(ovl2)
        assert domain_state(PREFIX + "int") == "running"
        assert gi.check("md5sum /ram/app") == app
    _interrupt_trials("overlay create", lambda d: interrupted(d, "overlay", "create", PREFIX + "int", ovl2),
                      lambda: os.unlink(ovl2), overlay_after)

    syn = PREFIX + "isyn"

    def synthesis_after(was_interrupted):
        nothing_left(store)
        if was_interrupted:
            assert domain_state(syn) is None
            assert not os.path.exists(os.path.join(store, "instances", syn))
    _interrupt_trials("synthesize", lambda d: interrupted(d, "synthesize", ovl, "--name", syn),
                      lambda: (destroy(syn), cli("instance", "remove", syn)), synthesis_after, RESTORE_BOUND_S)

    gi.close()
    cli("instance", "remove", PREFIX + "int")
    os.unlink(pkg)
    os.unlink(ovl)

    # Handoff: the sender interrupted (its VM runs on here, the receiver is
    # told and leaves nothing), then the receiver interrupted (the same).
    for side in ("send", "receive"):
        n = [0]

        def run(delay):
            n[0] += 1
            src, dst = PREFIX + "is-%s%d" % (side, n[0]), PREFIX + "id-%s%d" % (side, n[0])
            gs, sapp = launch_instance(src)
            port = _free_port()
            recv_cmd = ["handoff", "receive", "--listen", "127.0.0.1:%d" % port, "--token-file", _token(),
                        "--once", "--name", dst, "--timeout", "20"]
            send_cmd = ["handoff", "send", src, "127.0.0.1:%d" % port, "--token-file", _token(),
                        "--timeout", "20"]
            other_cmd = [CLI, "--quiet", "--store", RUN + ("/store" if side == "receive" else "/store2")] + (
                send_cmd if side == "receive" else recv_cmd)
            if side == "receive":
                # The sender after the receiver listens (the receiver is started by interrupted()
                # below); started first, it found nobody and the receiver waited for ever.
                other_cmd = ["sh", "-c", 'sleep 0.3; exec "$0" "$@"'] + other_cmd
            other = subprocess.Popen(other_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if side == "send":
                time.sleep(0.3)
                res = interrupted(delay, *send_cmd)
            else:
                res = interrupted(delay, *recv_cmd, store=RUN + "/store2")
            try:
                other.wait(timeout=60)
            except subprocess.TimeoutExpired:
                other.kill()
                other.wait()
                raise AssertionError("the other side of an interrupted handoff still ran after 60 s")
            nothing_left(RUN + "/store")
            nothing_left(RUN + "/store2")
            at_src, at_dst = domain_state(src), domain_state(dst)
            if res[0] == 130:  # interrupted: the VM runs on at the source, unchanged
                assert at_src == "running" and at_dst is None, (at_src, at_dst, res, other.stderr.read())
                assert gs.check("md5sum /ram/app") == sapp
            else:  # it had got past its last check point: handed off
                assert at_src is None and at_dst == "running", (at_src, at_dst, res, other.stderr.read())
            gs.close()
            for name, st in ((src, "/store"), (dst, "/store2")):
                cli("instance", "remove", name, store=RUN + st, check=False)
            return res
        # Delays count from the start of the side interrupted; the other starts 0.3 s after the receiver.
        # The first 40 %: a handoff's later part (the source's cleanup after RUNNING, about
        # 1.5 s of 3.5) is past the point of no return, where SIGINT only lets it complete.
        _interrupt_trials("handoff " + side, run, lambda: None, lambda was: None,
                          RESTORE_BOUND_S if side == "receive" else INTERRUPT_BOUND_S, span=0.4)


def _tiny_fs(path, megabytes):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % megabytes, "tmpfs", path], check=True)


def test_disk_full_gives_a_clear_error_and_leaves_nothing(world):
    tiny = RUN + "/tiny"
    _tiny_fs(tiny, 1)  # the instance's own 2 MiB of random data alone does not fit
    try:
        g, app = launch_instance(PREFIX + "full")
        # An overlay that does not fit.
        r = cli("overlay", "create", PREFIX + "full", tiny + "/app.ovl", "--codec", "none", check=False)
        assert r.returncode == 1 and "No space left on device" in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("cloudlet: error: ")
        assert os.listdir(tiny) == []
        assert domain_state(PREFIX + "full") == "running"
        assert g.check("md5sum /ram/app") == app
        g.close()
        cli("instance", "remove", PREFIX + "full")
        # A store on a full disk: importing a base fails whole.
        cli("base", "export", "fbase", RUN + "/fbase.pkg")
        r = cli("base", "import", RUN + "/fbase.pkg", store=tiny + "/store", check=False)
        assert r.returncode == 1 and "No space left on device" in r.stderr, r.stderr
        assert os.listdir(tiny + "/store/tmp") == [] and os.listdir(tiny + "/store/bases") == []
        print("disk full: %s" % r.stderr.strip())
    finally:
        subprocess.run(["umount", tiny])
        if os.path.exists(RUN + "/fbase.pkg"):
            os.unlink(RUN + "/fbase.pkg")


def test_permission_errors_give_clear_messages(world):
    """As an unprivileged user against root's store: refused, named, nothing changed."""
    nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", CLI, "--quiet"]
    r = subprocess.run(nobody + ["--store", RUN + "/store", "base", "remove", "fbase"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Permission denied" in r.stderr, r.stderr
    assert r.stderr.startswith("cloudlet: error: ") and r.stderr.count("\n") == 1
    print("permission: %s" % r.stderr.strip())
    assert any(b["name"] == "fbase" for b in json.loads(cli("--json", "base", "list").stdout))
    r = subprocess.run(nobody + ["--store", "/root/cloudlet-nope", "base", "list"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Permission denied" in r.stderr and "/root/cloudlet-nope" in r.stderr, r.stderr


def test_tokens_never_shown_and_peers_authenticated(world):
    """A handoff with a wrong token is refused before any state moves; neither
    side's verbose log, output or command line shows either token."""
    good, bad = RUN + "/token-good", RUN + "/token-bad"
    secrets = {good: b"GOODSECRET-" + os.urandom(16).hex().encode() + b"-GOODSECRET",
               bad: b"BADSECRET-" + os.urandom(16).hex().encode() + b"-BADSECRET"}
    for path, value in secrets.items():
        with open(path, "wb") as f:
            f.write(value)
        os.chmod(path, 0o600)
    src = PREFIX + "tok"
    g, app = launch_instance(src)
    port = _free_port()
    receiver = subprocess.Popen([CLI, "--verbose", "--store", RUN + "/store2", "handoff", "receive",
                                 "--listen", "127.0.0.1:%d" % port, "--token-file", good, "--once"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.3)
    with open("/proc/%d/cmdline" % receiver.pid, "rb") as f:
        cmdline = f.read()
    sent = subprocess.run([CLI, "--verbose", "--store", RUN + "/store", "handoff", "send", src,
                           "127.0.0.1:%d" % port, "--token-file", bad], capture_output=True)
    receiver.kill()
    r_out, r_err = receiver.communicate()
    assert sent.returncode == 1 and b"token" in sent.stderr, sent.stderr
    print("wrong token: %s" % sent.stderr.decode().strip().splitlines()[-1])
    for blob in (sent.stdout, sent.stderr, r_out, r_err, cmdline):
        for value in secrets.values():
            assert value not in blob and value[:12] not in blob
    assert domain_state(src) == "running" and g.check("md5sum /ram/app") == app
    g.close()
    cli("instance", "remove", src)
    recovered_and_clean(RUN + "/store2")


# ---- Hostile peers at a listening destination (issue 18) --------------------

def _proc_figures(pid):
    """(open fds, RSS in KiB) of a process."""
    fds = len(os.listdir("/proc/%d/fd" % pid))
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return fds, rss


class _Sampler:
    """The most fds and RSS a process had while it ran."""

    def __init__(self, pid):
        self.pid, self.fds, self.rss, self._stop = pid, 0, 0, False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            try:
                fds, rss = _proc_figures(self.pid)
            except (OSError, StopIteration):
                return
            self.fds, self.rss = max(self.fds, fds), max(self.rss, rss)
            time.sleep(0.05)

    def stop(self):
        self._stop = True
        self._t.join()


def _serving_receiver(name):
    port = _free_port()
    p = subprocess.Popen([CLI, "--store", RUN + "/store2", "handoff", "receive", "--listen", "127.0.0.1:%d" % port,
                          "--token-file", _token(), "--once", "--name", name, "--timeout", "30",
                          "--handshake-timeout", "3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "listening" in p.stdout.readline()
    # Its stderr read as it comes: a receiver whose log nobody reads would
    # block in its writes.
    p.lines = []
    p.reader = threading.Thread(target=lambda: p.lines.extend(iter(p.stderr.readline, "")), daemon=True)
    p.reader.start()
    return p, port


def _attack(port, stop, counts, other_token):
    """Strangers at the destination until `stop` is set. Returns the threads."""
    def idle():
        held = []
        for _ in range(200):
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                pass
        counts["idle"] = len(held)
        while not stop.is_set():
            time.sleep(0.05)
        for s in held:
            s.close()

    def drip():
        while not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                while not stop.is_set():
                    s.send(b"\x16")
                    time.sleep(0.3)
            except OSError:
                counts["drips cut"] = counts.get("drips cut", 0) + 1

    def garbage():
        rnd = random.Random(SEED)
        while not stop.is_set():
            for payload in (bytes(rnd.getrandbits(8) for _ in range(1024)),
                            b"\x16\x03\x01\xff\xff\x01\xff\xff\xff",  # a TLS record claiming 64 KiB
                            b"\xff\xff\xff\xff\x01" + bytes(11)):      # a frame header claiming 4 GiB
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                        s.sendall(payload)
                    counts["garbage"] = counts.get("garbage", 0) + 1
                except OSError:
                    pass
            for _ in range(10):  # connect/close loops
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=2).close()
                except OSError:
                    pass
            time.sleep(0.1)

    def replay():
        # What a source with another token sends (its TLS ClientHello and on),
        # recorded by a relay, then replayed on fresh connections.
        relay = socket.socket()
        relay.bind(("127.0.0.1", 0))
        relay.listen(1)
        rport = relay.getsockname()[1]
        recorded = bytearray()

        def forward():
            c, _ = relay.accept()
            d = socket.create_connection(("127.0.0.1", port))
            c.settimeout(5)
            d.settimeout(5)
            try:
                data = c.recv(65536)
                recorded.extend(data)
                d.sendall(data)
                c.sendall(d.recv(65536))
                data = c.recv(65536)
                recorded.extend(data)
                d.sendall(data)
            except OSError:
                pass
            c.close()
            d.close()

        t = threading.Thread(target=forward)
        t.start()
        wrong = subprocess.run([CLI, "--quiet", "--store", RUN + "/store", "handoff", "send", PREFIX + "hp-w",
                                "127.0.0.1:%d" % rport, "--token-file", other_token, "--timeout", "10"],
                               capture_output=True, text=True, timeout=60)
        t.join()
        relay.close()
        counts["wrong token exit"] = wrong.returncode
        counts["wrong token message"] = wrong.stderr.strip()
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(bytes(recorded))
                    s.settimeout(3)
                    while s.recv(4096):
                        pass
                counts["replays"] = counts.get("replays", 0) + 1
            except OSError:
                pass
            time.sleep(0.2)

    threads = [threading.Thread(target=f, daemon=True) for f in (idle, drip, drip, garbage, replay)]
    for t in threads:
        t.start()
    return threads


def test_hostile_peers_do_not_hold_up_a_handoff(world):
    other = RUN + "/other-token"
    with open(other, "wb") as f:
        f.write(os.urandom(48))
    os.chmod(other, 0o600)
    g_w, app_w = launch_instance(PREFIX + "hp-w")  # the wrong-token source: it must run on untouched

    def one(i, attacked):
        src, dst = PREFIX + "hp-s%d" % i, PREFIX + "hp-d%d" % i
        g, app = launch_instance(src)
        receiver, port = _serving_receiver(dst)
        sampler = _Sampler(receiver.pid)
        stop, counts, threads = threading.Event(), {}, []
        if attacked:
            threads = _attack(port, stop, counts, other)
            time.sleep(2)  # the idle ones are in, the floods are on
        t = time.monotonic()
        cli("handoff", "send", src, "127.0.0.1:%d" % port, "--token-file", _token(), "--timeout", "30")
        took = time.monotonic() - t
        stop.set()
        for th in threads:
            th.join(timeout=10)
        receiver.wait(timeout=60)
        receiver.reader.join(timeout=10)
        err = "".join(receiver.lines)
        sampler.stop()
        assert receiver.returncode == 0, err
        g.close()  # its domain went to the destination
        h = harness.Guest.attach(dst)
        assert h.check("md5sum /ram/app") == app
        h.close()
        destroy(dst)
        cli("instance", "remove", dst, store=RUN + "/store2")
        return took, sampler.fds, sampler.rss, err, counts

    # Two of each, so that one slow run on a busy machine does not decide:
    # the slower unloaded run against the faster attacked one.
    quiet = [one(0, False), one(1, False)]
    unloaded = max(q[0] for q in quiet)
    fds0, rss0 = max(q[1] for q in quiet), max(q[2] for q in quiet)
    attacked = [one(2, True), one(3, True)]
    loaded = min(a[0] for a in attacked)
    fds1, rss1 = max(a[1] for a in attacked), max(a[2] for a in attacked)
    err, counts = attacked[0][3], attacked[0][4]
    lines = err.splitlines()
    kinds = {k: sum(1 for line in lines if k in line) for k in ("TLS handshake", "dropped", "did not complete")}
    print("hostile peers: handoff %.2f s under attack vs %.2f s unloaded (%.2fx); receiver fds %d vs %d, RSS %d vs %d "
          "KiB; %d log lines %s; attack %s" % (loaded, unloaded, loaded / unloaded, fds1, fds0, rss1, rss0,
                                               len(lines), kinds, counts))
    assert counts.get("idle", 0) == 200 and counts.get("garbage", 0) > 0 and counts.get("replays", 0) > 0
    assert counts["wrong token exit"] == 1 and "TLS handshake" in counts["wrong token message"], counts
    assert loaded <= 1.2 * unloaded, "the handoff took %.2f s under attack, %.2f s without" % (loaded, unloaded)
    # Bounded: the admission holds at most 64 + 16 connections at once
    # (unauthenticated ones and dropped ones still closing: net/handoff_gate.h),
    # beyond what the receiver holds anyway; the rest wait in the backlog.
    assert fds1 <= fds0 + 64 + 16 + 4, (fds1, fds0)
    assert rss1 <= rss0 + 32 * 1024, (rss1, rss0)
    # Every refused connection: one warning line of its own, at most 20 a
    # second (then one line a second says how many more).
    assert all(line.startswith("cloudlet: ") for line in lines), lines[:5]
    assert len(lines) <= 25 * (loaded + 4), len(lines)
    assert kinds["TLS handshake"] > 0 and kinds["dropped"] > 0, kinds
    # The wrong-token source was refused before anything was sent: it runs on.
    assert domain_state(PREFIX + "hp-w") == "running"
    assert g_w.check("md5sum /ram/app") == app_w
    g_w.close()
    destroy(PREFIX + "hp-w")
    cli("instance", "remove", PREFIX + "hp-w")
