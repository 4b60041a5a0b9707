"""OpenStack++ through a running OpenStack: the test cloud of
tests/openstack/cloud (Keystone, Glance, Placement, Nova with the cloudlet
driver in a real nova-compute, Neutron with the linuxbridge agent, MariaDB,
RabbitMQ: Debian 12's packages), driven only through the cloud's public,
Keystone-authenticated APIs as a tenant (openstacksdk; admin only to find
which libvirt domain a server is, so the harness can open its console).

What is checked from inside each guest (the harness's shell channel): files
in RAM, a disk range read past the page cache, the MAC Neutron gave the port.
"""
import contextlib
import copy
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import yaml

import cloudlet
import harness
import openstack

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("CLOUDLET_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
STATE = "/var/lib/cloudlet-openstack"
# The two compute hosts (tests/openstack/cloud): this machine's libvirtd and
# store, and compute2's, in its own namespaces, reached through its socket.
HOST2 = "compute2"
HOST2_URI = "qemu+unix:///system?socket=%s/host2/run/libvirt/libvirt-sock" % STATE
STORES = {None: "/var/lib/nova/cloudlet", HOST2: STATE + "/host2/nova/cloudlet"}
URIS = {None: "qemu:///system", HOST2: HOST2_URI}
# compute2's /var/lib/nova (its store, its VMs' sockets) as this machine sees it
HOST2_PATHS = ("/var/lib/nova/", STATE + "/host2/nova/")


def host_key(host):
    """The STORES/URIS key of a Nova host name (None: this machine's host)."""
    return HOST2 if host == HOST2 else None


def handoff_logged(src, dest, uuid):
    """The last line of the source host's nova-compute log saying it live-
    migrated `uuid` to `dest` by handoff (what it sent), or None."""
    log = STATE + "/log/%s.log" % ("nova-compute2" if src == HOST2 else "nova-compute")
    with open(log) as f:
        sent = [line for line in f if "cloudlet: live migration to %s" % dest in line
                and uuid in line and "bytes sent" in line]
    return sent[-1].split("cloudlet: ", 1)[1].replace("\x1b[00m", "").strip() if sent else None
# The app developer's web host for http:// overlays: this machine's end of
# the link to compute2, reachable from both compute hosts.
WEB_HOST = "10.231.0.1"

CUSTOMISE = harness.APP_STEP
FINGERPRINT = harness.FINGERPRINT
MACS = "cat /sys/class/net/*/address"
SOURCE = os.path.dirname(os.path.dirname(HERE))


def osc(*args, cloud="cloudlet-test-demo", check=True):
    """`openstack --os-cloud CLOUD ARGS -f json` with this tree's
    `openstack cloudlet` plugin (osc-plugin/) and binding on the path, as the
    Debian package python3-cloudlet-osc installs them."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(SOURCE, "osc-plugin"), os.path.join(SOURCE, "python-ctypes")]))
    r = subprocess.run(["openstack", "--os-cloud", cloud] + list(args) + ["-f", "json"],
                       env=env, capture_output=True, text=True)
    if check:
        assert r.returncode == 0, (args, r.stderr)
        return json.loads(r.stdout)
    return r


@pytest.fixture(scope="module")
def cloud():
    subprocess.run([os.path.join(HERE, "cloud"), "up", BUILD], check=True)
    harness.setup()
    demo = openstack.connect(cloud="cloudlet-test-demo")
    admin = openstack.connect(cloud="cloudlet-test")
    yield demo, admin
    for conn in (demo, openstack.connect(cloud="cloudlet-test-other")):
        for s in conn.compute.servers():
            if s.name.startswith("cltest-"):
                conn.compute.delete_server(s)


class Cloud:
    """What a test does as the tenant, and what it looks up as admin."""

    def __init__(self, demo, admin):
        self.c = demo
        self.admin = admin
        self.network = demo.network.find_network("provider")
        self.flavor = demo.compute.find_flavor("cloudlet.small")

    def upload(self, name, path=None, data=b"", **properties):
        kw = dict(name=name, disk_format="raw", container_format="bare",
                  visibility="private", allow_duplicates=True, **properties)
        if path:
            kw["filename"] = path
        else:
            kw["data"] = data
        return self.image_active(self.c.image.create_image(**kw))

    def image_active(self, img, wait=300):
        deadline = time.monotonic() + wait
        while True:
            img = self.c.image.get_image(img.id)
            if img.status == "active":
                return img
            assert img.status in ("queued", "saving", "uploading", "importing"), img.status
            assert time.monotonic() < deadline, "image %s still %s" % (img.id, img.status)
            time.sleep(1)

    def boot(self, name, image, metadata=None, wait=True):
        s = self.c.compute.create_server(
            name="cltest-" + name, image_id=image.id, flavor_id=self.flavor.id,
            networks=[{"uuid": self.network.id}], metadata=metadata or {})
        if wait:
            s = self.c.compute.wait_for_server(s, status="ACTIVE", failures=["ERROR"],
                                               interval=2, wait=600)
        return s

    def customised(self, name, base):
        """A server resumed from `base` with the app step done, left running
        -> (server, its fingerprint)."""
        s = self.boot(name, base)
        g = self.guest(s)
        g.check(CUSTOMISE)
        launch = g.check(FINGERPRINT)
        g.detach()
        return s, launch

    def failed(self, s):
        """The server as it ends in ERROR: its fault message."""
        s = self.c.compute.wait_for_server(s, status="ERROR", failures=["ACTIVE"],
                                           interval=2, wait=600)
        # Nova's own fault record, as `openstack server show` prints it.
        body = self.c.compute.get("/servers/" + s.id).json()["server"]
        return body.get("fault", {}).get("message", "")

    def domain(self, s):
        return self.admin.compute.get_server(s.id).instance_name

    def host(self, s):
        return self.admin.compute.get_server(s.id).compute_host

    def guest(self, s):
        if host_key(self.host(s)):
            return harness.Guest.attach(self.domain(s), uri=HOST2_URI, paths=HOST2_PATHS)
        return harness.Guest.attach(self.domain(s))

    def port_mac(self, s):
        ports = list(self.c.network.ports(device_id=s.id))
        assert len(ports) == 1
        return ports[0].mac_address

    def delete(self, s):
        domain = self.domain(s)
        self.c.compute.delete_server(s)
        self.c.compute.wait_for_delete(s, interval=2, wait=300)
        return domain

    def left_on_host(self, domain, hosts=(None, HOST2)):
        """What a server left on the compute hosts: its domain, its store files."""
        left = []
        for host in hosts:
            if on_host(domain, host):
                left.append("domain %s on %s" % (domain, host or "compute1"))
            store = STORES[host]
            inst = os.path.join(store, "instances", domain)
            if os.path.exists(inst):
                left.append(inst)
            tmp = os.path.join(store, "tmp")
            if os.path.isdir(tmp):
                left += [os.path.join(tmp, f) for f in os.listdir(tmp)
                         if not f.startswith(".")]
        return left


def on_host(domain, host):
    """Whether `domain` is defined on the libvirtd of `host` (None: compute1)."""
    return subprocess.run(["virsh", "-c", URIS[host], "dominfo", domain],
                          capture_output=True).returncode == 0


def make_base_images(cl, work):
    """Import base VM: a base package made with the library (as `cloudlet base
    create` + `base export` would) goes into Glance as the tenant, with the
    base image that links it (docs/nova.md) -> (base ID, base image, package
    image)."""
    os.chmod(work, 0o755)
    g = harness.Guest.start("osbase")
    try:
        g.check("dd if=/dev/urandom of=/dev/vda bs=65536 count=16 2>/dev/null && sync && "
                "echo in-the-base-memory > /ram/marker")
        with cloudlet.Context(store_dir=str(work / "store")) as ctx:
            info = ctx.base_create(g.domain, name="osbase", stop=True)
            ctx.base_export(info.id, str(work / "base.pkg"))
        g.poweroff()
    finally:
        g.close()
    with cloudlet.Context(store_dir=str(work / "store")) as ctx:
        seen = ctx.base_package_inspect(str(work / "base.pkg"))
    assert seen.id == info.id and seen.status == "unverified"
    out = osc("cloudlet", "base", "import", str(work / "base.pkg"), "--name", "cltest-base")
    assert out["base_id"] == info.id
    pkg = cl.image_active(cl.c.image.get_image(out["package_image"]))
    base = cl.image_active(cl.c.image.get_image(out["base_image"]))
    assert base.properties["cloudlet_base_package"] == pkg.id
    assert base.properties["base_sha256_uuid"] == info.id
    assert any(r["ID"] == base.id and r["Package image"] == pkg.id
               for r in osc("cloudlet", "base", "list"))
    return info.id, base, pkg


def remove_base_images(cl, base_id, images):
    """The images, and the base in each compute host's store (imported on
    first use; a test's base is of no use to the next run)."""
    # What failed tests left running would keep the base busy in a store.
    for conn in (cl.c, openstack.connect(cloud="cloudlet-test-other")):
        left = [s for s in conn.compute.servers() if s.name.startswith("cltest-")]
        for s in left:
            conn.compute.delete_server(s)
        for s in left:
            conn.compute.wait_for_delete(s, interval=2, wait=300)
    for img in images:
        cl.c.image.delete_image(img, ignore_missing=True)
    for store in STORES.values():
        if os.path.isdir(store):
            with cloudlet.Context(store_dir=store) as ctx:
                with contextlib.suppress(cloudlet.NotFoundError):
                    ctx.base_remove(base_id)


@pytest.fixture(scope="module")
def base_images(cloud, tmp_path_factory):
    cl = Cloud(*cloud)
    base_id, base, pkg = make_base_images(cl, tmp_path_factory.mktemp("base"))
    yield cl, base_id, base
    remove_base_images(cl, base_id, (base, pkg))


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Serves a file at 2 KiB/s: a synthesis that stays under way."""
    path_ = None
    requested = None

    def do_GET(self):
        size = os.path.getsize(self.path_)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        type(self).requested.set()
        with open(self.path_, "rb") as f:
            with contextlib.suppress(OSError):
                while chunk := f.read(1024):
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    time.sleep(0.5)

    def log_message(self, *a):
        pass


class _Huge(http.server.BaseHTTPRequestHandler):
    """Declares a body far over any overlay limit."""
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 50))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(b"\0" * 65536)

    def log_message(self, *a):
        pass


@contextlib.contextmanager
def serving(handler):
    srv = http.server.ThreadingHTTPServer((WEB_HOST, 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield "http://%s:%d/x.ovl" % (WEB_HOST, srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()


@contextlib.contextmanager
def http_serving(path):
    """A plain HTTP server of one file, as an app developer's web host."""
    folder, name = os.path.split(path)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=folder)  # noqa: E731
    srv = http.server.ThreadingHTTPServer((WEB_HOST, 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield "http://%s:%d/%s" % (WEB_HOST, srv.server_address[1], name)
    finally:
        srv.shutdown()
        srv.server_close()


def test_five_operations_through_the_api(base_images, tmp_path):
    cl, base_id, base = base_images

    # Resume base VM: a boot of the base image is a resume of its memory
    # state (the package imported into the host's store on first use), with
    # a fresh NIC carrying the Neutron port's MAC.
    t = time.monotonic()
    a = cl.boot("resumed", base)
    print("resume through Nova: ACTIVE after %.1f s" % (time.monotonic() - t))
    ga = cl.guest(a)
    assert cl.port_mac(a) in ga.check(MACS).split()
    # the base's memory state, not a fresh boot: a RAM file of the base is there
    assert ga.check("cat /ram/marker").strip() == "in-the-base-memory"
    ga.check(CUSTOMISE)
    launch = ga.check(FINGERPRINT)

    # Create VM overlay: a snapshot of the customised server is its overlay.
    t = time.monotonic()
    ov = cl.c.compute.create_server_image(a, "cltest-overlay", wait=True, timeout=600)
    ov = cl.image_active(ov)
    print("overlay through Nova: %d bytes in Glance after %.1f s" % (
        ov.size, time.monotonic() - t))
    props = ov.properties
    assert props["cloudlet_type"] == "cloudlet_overlay"
    assert props["base_sha256_uuid"] == base_id
    assert cl.c.compute.get_server(a).status == "ACTIVE"
    assert ga.check(FINGERPRINT) == launch  # the snapshot left it running as it was
    # ... downloadable, and a valid overlay of that base
    assert any(r["ID"] == ov.id for r in osc("cloudlet", "overlay", "list", "--base", base_id[:12]))
    path = str(tmp_path / "app.ovl")
    out = osc("cloudlet", "overlay", "download", ov.id, "--file", path)
    assert out["base_id"] == base_id and out["bytes"] == ov.size
    assert os.path.getsize(path) == ov.size
    with cloudlet.Context(store_dir=str(tmp_path / "store")) as ctx:
        assert ctx.overlay_inspect(path).base_id == base_id

    # VM synthesis from the overlay in Glance, and from an http URL.
    t = time.monotonic()
    b = cl.boot("synth-glance", base, metadata={"overlay_url": "glance://" + ov.id})
    print("synthesis through Nova (glance://): ACTIVE after %.1f s" % (time.monotonic() - t))
    gb = cl.guest(b)
    assert gb.check(FINGERPRINT) == launch
    assert cl.port_mac(b) in gb.check(MACS).split()
    os.chmod(tmp_path, 0o755)
    with http_serving(path) as url:
        # early start through Nova: a server metadata key (docs/early-start.md)
        c = cl.boot("synth-http", base, metadata={"overlay_url": url, "cloudlet_early_start": "true"})
    gc = cl.guest(c)
    assert gc.check(FINGERPRINT) == launch

    for s, g in ((a, ga), (b, gb), (c, gc)):
        domain = cl.delete(s)
        g.close()
        assert cl.left_on_host(domain) == []
    cl.c.image.delete_image(ov)


def test_bad_overlays_end_in_error_and_leave_nothing(base_images, tmp_path):
    cl, base_id, base = base_images
    junk = tmp_path / "junk.ovl"
    junk.write_bytes(os.urandom(1 << 20))
    os.chmod(tmp_path, 0o755)
    not_overlay = cl.upload("cltest-not-an-overlay", data=os.urandom(1 << 16),
                            cloudlet_type="cloudlet_overlay", base_sha256_uuid=base_id)
    with http_serving(str(junk)) as url, serving(_Huge) as huge:
        cases = [
            ("glance image that is not an overlay", "glance://" + not_overlay.id, "overlay"),
            ("http URL of random bytes", url, "overlay"),
            ("unreachable URL", "http://%s:9/nothing.ovl" % WEB_HOST, "connect"),
            ("unknown scheme", "ftp://example.org/x.ovl", "overlay_url"),
            ("a body over the overlay size limit", huge, "too large"),
        ]
        for what, url_, expect in cases:
            s = cl.boot("bad", base, metadata={"overlay_url": url_}, wait=False)
            message = cl.failed(s)
            print("%s: %s" % (what, message))
            assert expect.lower() in message.lower(), (what, message)
            assert "Exceeded maximum number of retries" not in message, what
            assert STATE not in message, what  # no compute host paths for tenants
            assert cl.left_on_host(cl.delete(s)) == [], what
    cl.c.image.delete_image(not_overlay)


def test_delete_while_synthesis_runs_leaves_nothing(base_images, tmp_path):
    """A tenant deletes a server whose overlay is still arriving: the spawn
    is cancelled (the driver triggers the library's cancel), the download
    stops, and the host keeps nothing of it."""
    cl, base_id, base = base_images
    a = cl.boot("for-overlay", base)
    ov = cl.c.compute.create_server_image(a, "cltest-overlay-2", wait=True, timeout=600)
    path = str(tmp_path / "slow.ovl")
    with open(path, "wb") as f:
        cl.c.image.download_image(cl.image_active(ov), output=f)
    cl.delete(a)
    _Trickle.path_ = path
    _Trickle.requested = threading.Event()
    with serving(_Trickle) as url:
        s = cl.boot("deleted-early", base, metadata={"overlay_url": url}, wait=False)
        assert _Trickle.requested.wait(300), "the compute host never fetched the overlay"
        time.sleep(2)
        state = cl.admin.compute.get_server(s.id)
        assert state.status == "BUILD" and state.task_state == "spawning", (state.status, state.task_state)
        t = time.monotonic()
        domain = cl.delete(s)
        print("delete during synthesis: gone after %.1f s" % (time.monotonic() - t))
    assert cl.left_on_host(domain) == []
    cl.c.image.delete_image(ov)


def test_client_refuses_what_is_not_a_package_or_an_overlay(base_images, tmp_path):
    cl, base_id, base = base_images
    junk = tmp_path / "junk.pkg"
    junk.write_bytes(os.urandom(1 << 16))
    before = {i.id for i in cl.c.image.images()}
    r = osc("cloudlet", "base", "import", str(junk), check=False)
    assert r.returncode != 0 and "not a usable base package" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert {i.id for i in cl.c.image.images()} == before  # nothing uploaded
    r = osc("cloudlet", "overlay", "download", base.id, "--file", str(tmp_path / "x"), check=False)
    assert r.returncode != 0 and "not a VM overlay" in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "x")


def test_overlay_of_another_base_is_refused(base_images, tmp_path):
    """An overlay made from a base this cloud's base image is not (a
    developer's mistake): refused as the wrong base, not rescheduled, even
    though the host lacks that other base too."""
    cl, base_id, base = base_images
    os.chmod(tmp_path, 0o755)
    # Where QEMU's user can reach the resumed instance's files.
    os.makedirs("/var/lib/cloudlet-test", mode=0o755, exist_ok=True)
    store = tempfile.mkdtemp(prefix="openstack-other-", dir="/var/lib/cloudlet-test")
    os.chmod(store, 0o755)
    g = harness.Guest.start("osother")
    try:
        with cloudlet.Context(store_dir=store) as ctx:
            other = ctx.base_create(g.domain, name="osother", stop=True)
            g.poweroff()
            inst = ctx.base_resume(other.id)
            try:
                ctx.overlay_create(inst.name, str(tmp_path / "other.ovl"))
            finally:
                harness.Guest.attach(inst.name).close()
                ctx.instance_remove(inst.name)
    finally:
        g.close()
        shutil.rmtree(store, ignore_errors=True)
    assert other.id != base_id
    with http_serving(str(tmp_path / "other.ovl")) as url:
        s = cl.boot("other-base", base, metadata={"overlay_url": url}, wait=False)
        message = cl.failed(s)
    print("overlay of another base: %s" % message)
    assert "wrong base" in message and other.id in message, message
    assert cl.left_on_host(cl.delete(s)) == []


def live_migrate(server_id, host):
    """`openstack server migrate --live-migration --host HOST` as the admin
    (Nova's default policy keeps live migration to admins)."""
    r = subprocess.run(["openstack", "--os-cloud", "cloudlet-test", "--os-compute-api-version", "2.30",
                        "server", "migrate",
                        "--live-migration", "--host", host, server_id],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def migrations(cl, s):
    return cl.admin.compute.get("/os-migrations?instance_uuid=%s" % s.id,
                                microversion="2.59").json()["migrations"]


def wait_migrated(cl, s, wait=600):
    """Until the server's last migration ended: that migration."""
    deadline = time.monotonic() + wait
    while True:
        last = max(migrations(cl, s), key=lambda m: m["id"])
        if last["status"] in ("completed", "error", "failed", "cancelled"):
            server = cl.admin.compute.get_server(s.id)
            if server.task_state is None:
                return last
        assert time.monotonic() < deadline, "migration still %s" % last["status"]
        time.sleep(1)


def port_host(cl, s):
    ports = list(cl.admin.network.ports(device_id=s.id))
    assert len(ports) == 1
    return ports[0].binding_host_id


def test_live_migration_through_nova_uses_the_handoff(base_images):
    """VM handoff within one cloud: `openstack server migrate --live-migration
    --host OTHER` of a cloudlet instance goes over the cloudlet handoff
    (nova-compute's log says so, and only what the destination's base lacks
    crosses), and Nova's records end as after any live migration: host, port
    binding, a completed migration. Then back again."""
    cl, base_id, base = base_images
    a, launch = cl.customised("migrating", base)
    mac = cl.port_mac(a)
    domain = cl.domain(a)
    first = cl.host(a)
    hosts = [h.host for h in cl.admin.compute.services(binary="nova-compute")]
    assert len(hosts) == 2, hosts
    for dest in [h for h in hosts if h != first] + [first]:
        src = cl.host(a)
        t = time.monotonic()
        live_migrate(a.id, dest)
        m = wait_migrated(cl, a)
        took = time.monotonic() - t
        assert m["status"] == "completed", m
        assert m["migration_type"] == "live-migration" and m["dest_compute"] == dest, m
        assert cl.host(a) == dest
        assert cl.c.compute.get_server(a).status == "ACTIVE"
        assert port_host(cl, a) == dest
        # The VM itself: on the destination's libvirtd, gone from the source's.
        src_key, dst_key = host_key(src), host_key(dest)
        assert on_host(domain, dst_key) and not on_host(domain, src_key)
        assert cl.left_on_host(domain, hosts=(src_key,)) == []
        g = cl.guest(a)
        assert g.check(FINGERPRINT) == launch
        assert mac in g.check(MACS).split()
        g.detach()
        sent = handoff_logged(src, dest, a.id)
        assert sent, "no handoff from %s to %s in its nova-compute log" % (src, dest)
        print("live migration %s -> %s through Nova: %.1f s; %s" % (src, dest, took, sent))
    assert cl.left_on_host(cl.delete(a)) == []


@contextlib.contextmanager
def slow_link(mbit):
    """The link between the two compute hosts (the veth pair to compute2's
    namespace, which carries only host-to-host traffic: the controller's
    services reach compute2 through netns-relay) held at `mbit` Mbit/s each
    way with tbf (this kernel has no netem)."""
    tbf = ["root", "tbf", "rate", "%dmbit" % mbit, "burst", "32kb", "latency", "400ms"]
    ends = [["tc", "qdisc", "%s", "dev", "cltc2-h"],
            ["ip", "netns", "exec", "cltc2", "tc", "qdisc", "%s", "dev", "cltc2-n"]]
    for e in ends:
        subprocess.run([a.replace("%s", "replace") for a in e] + tbf, check=True)
    try:
        yield
    finally:
        for e in ends:
            subprocess.run([a.replace("%s", "del") for a in e] + ["root"], check=False)


def test_aborted_live_migration_leaves_the_vm_running_on_the_source(base_images):
    """`openstack server migration abort` while the handoff is under way (on a
    slow link): the migration ends cancelled, the server is ACTIVE on its
    source host with its state, and the destination keeps nothing."""
    cl, base_id, base = base_images
    a, launch = cl.customised("aborted", base)
    domain = cl.domain(a)
    src = cl.host(a)
    dest = [h.host for h in cl.admin.compute.services(binary="nova-compute") if h.host != src][0]
    src_key, dst_key = host_key(src), host_key(dest)
    with slow_link(2):
        live_migrate(a.id, dest)
        deadline = time.monotonic() + 300
        while True:
            m = max(migrations(cl, a), key=lambda m: m["id"])
            if m["status"] == "running":
                break
            assert m["status"] in ("accepted", "queued", "preparing"), m
            assert time.monotonic() < deadline, m
            time.sleep(0.5)
        time.sleep(2)  # the handoff is sending
        r = subprocess.run(["openstack", "--os-cloud", "cloudlet-test", "--os-compute-api-version",
                            "2.24", "server", "migration", "abort", a.id, str(m["id"])],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        m = wait_migrated(cl, a)
    assert m["status"] == "cancelled", m
    server = cl.admin.compute.get_server(a.id)
    assert server.status == "ACTIVE" and server.compute_host == src
    assert port_host(cl, a) == src
    assert on_host(domain, src_key)
    # The destination's rollback is Nova's cast after the migration's end.
    deadline = time.monotonic() + 120
    while cl.left_on_host(domain, hosts=(dst_key,)) and time.monotonic() < deadline:
        time.sleep(1)
    assert cl.left_on_host(domain, hosts=(dst_key,)) == []
    g = cl.guest(a)
    assert g.check(FINGERPRINT) == launch
    g.detach()
    assert cl.left_on_host(cl.delete(a)) == []


def test_handoff_to_another_cloud_with_one_client_command(base_images, tmp_path):
    """VM handoff across clouds (the seed's section 4.5): `openstack cloudlet
    handoff SERVER --to-cloud OTHER` as the tenant. Project "other" of this
    Keystone stands in for the second cloud (its own credentials, images and
    servers: docs/openstack.md). The VM arrives running as a new server
    there, with the state it had; the source server is deleted; the base was
    copied to the destination because its project lacked it. Wrong
    destination credentials change nothing anywhere."""
    cl, base_id, base = base_images
    other = openstack.connect(cloud="cloudlet-test-other")
    a, launch = cl.customised("handing-off", base)
    domain = cl.domain(a)

    # Wrong destination credentials: refused before anything is touched.
    with open("/etc/openstack/clouds.yaml") as f:
        clouds = yaml.safe_load(f)
    clouds["clouds"]["wrong"] = copy.deepcopy(clouds["clouds"]["cloudlet-test-other"])
    clouds["clouds"]["wrong"]["auth"]["password"] = "not-the-password"
    wrong = tmp_path / "clouds.yaml"
    wrong.write_text(yaml.safe_dump(clouds))
    before = {s.id for s in cl.admin.compute.servers(all_projects=True)}
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(wrong))
    r = subprocess.run(["openstack", "--os-cloud", "cloudlet-test-demo", "cloudlet", "handoff",
                        a.id, "--to-cloud", "wrong", "-f", "json"],
                       env=dict(env, PYTHONPATH=os.pathsep.join(
                           [os.path.join(SOURCE, "osc-plugin"), os.path.join(SOURCE, "python-ctypes")])),
                       capture_output=True, text=True)
    print("handoff with wrong credentials: exit %d, %s" % (r.returncode, r.stderr.strip()[-200:]))
    assert r.returncode != 0 and "cannot authenticate to the destination cloud" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert {s.id for s in cl.admin.compute.servers(all_projects=True)} == before
    assert cl.c.compute.get_server(a).status == "ACTIVE"
    assert not any(k.startswith("handoff") for k in (cl.c.compute.get_server(a).metadata or {}))

    # The handoff.
    t = time.monotonic()
    out = osc("cloudlet", "handoff", a.id, "--to-cloud", "cloudlet-test-other")
    took = time.monotonic() - t
    new = other.compute.get_server(out["server"])
    assert new.status == "ACTIVE"
    print("handoff to another cloud with one command: %.1f s (server %s on %s)" % (
        took, new.id, cl.admin.compute.get_server(new.id).compute_host))
    assert out["source_deleted"] is True
    cl.c.compute.wait_for_delete(a, interval=2, wait=300)
    copied = [i for i in other.image.images()
              if (i.properties or {}).get("base_sha256_uuid") == base_id]
    assert copied, "the base was not copied to the destination"
    gn = cl.guest(new)
    assert gn.check(FINGERPRINT) == launch
    ports = list(other.network.ports(device_id=new.id))
    assert len(ports) == 1 and ports[0].mac_address in gn.check(MACS).split()
    gn.detach()
    assert not any(k.startswith("handoff") for k in (other.compute.get_server(new).metadata or {}))
    new_domain = cl.domain(new)
    other.compute.delete_server(new)
    other.compute.wait_for_delete(new, interval=2, wait=300)
    assert cl.left_on_host(domain) == [] and cl.left_on_host(new_domain) == []
    for img in copied:
        pkg = (img.properties or {}).get("cloudlet_base_package")
        other.image.delete_image(img, ignore_missing=True)
        if pkg:
            other.image.delete_image(pkg, ignore_missing=True)
