"""CloudletDriver against Debian's real Nova (Zed) classes and objects, the
real libvirtd and QEMU, and the project's test guest.

The one stand-in is Glance's HTTP session (image_service.py): no Glance runs
here. Everything else is real: Nova's objects in a real sqlite database,
nova.image.glance.API, the libvirt driver underneath, libcloudlet.
"""
import os
import subprocess
import uuid

import pytest

import cloudlet
import harness
from image_service import LocalImageService

import nova.conf
from nova.compute import power_state
from nova.compute import task_states
from nova import context as nova_context
from nova import exception
import nova.image.glance
from nova.network import model as network_model
from nova import objects
from nova.virt.libvirt import driver as libvirt_driver

CONF = nova.conf.CONF
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CUSTOMISE = harness.APP_STEP
FINGERPRINT = harness.FINGERPRINT


@pytest.fixture(scope="module")
def images(nova_env):
    svc = LocalImageService(os.path.join(nova_env, "glance"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nova.image.glance, "get_default_image_service", lambda: svc)
        yield svc


@pytest.fixture(scope="module")
def base(driver):
    """A base VM of the test guest in the driver's store."""
    g = harness.Guest.start("novabase")
    try:
        g.check("dd if=/dev/urandom of=/dev/vda bs=65536 count=16 2>/dev/null && sync")
        with cloudlet.Context(store_dir=CONF.cloudlet.store_dir) as ctx:
            info = ctx.base_create(g.domain, name="novabase", stop=True)
        g.poweroff()
        yield info.id
    finally:
        g.close()


def base_props(base_id):
    return {"cloudlet_type": "cloudlet_base_disk", "base_sha256_uuid": base_id,
            "is_cloudlet": "True"}


def make_instance(metadata=None, image_props=None, image_ref=""):
    """A Nova instance as the compute manager hands it to spawn: image
    properties copied into system metadata as image_<key> (Zed)."""
    ctx = nova_context.get_admin_context()
    flavor = objects.Flavor(id=1, flavorid="1", name="m1.cloudlet", memory_mb=256,
                            vcpus=1, root_gb=0, ephemeral_gb=0, swap=0,
                            extra_specs={}, rxtx_factor=1.0, vcpu_weight=None,
                            disabled=False, is_public=True)
    sysmeta = {"image_" + k: v for k, v in (image_props or {}).items()}
    sysmeta.setdefault("image_disk_format", "raw")
    inst = objects.Instance(ctx, uuid=str(uuid.uuid4()), host="testhost",
                            node="testhost", flavor=flavor, metadata=metadata or {},
                            system_metadata=sysmeta, project_id="p", user_id="u",
                            image_ref=image_ref, vm_state="building", task_state=None,
                            kernel_id="", ramdisk_id="", os_type=None)
    inst.create()
    return ctx, inst


def image_meta(image_id=None, **fields):
    d = {"disk_format": "raw", "container_format": "bare", "properties": {}}
    if image_id:
        d["id"] = image_id
    d.update(fields)
    return objects.ImageMeta.from_dict(d)


def spawn(driver, ctx, inst, meta=None):
    driver.spawn(ctx, inst, meta or image_meta(), [], None, {},
                 network_info=network_model.NetworkInfo([]))


def gone(driver, inst):
    with pytest.raises(exception.InstanceNotFound):
        driver.get_info(inst)
    return not os.path.exists(os.path.join(CONF.cloudlet.store_dir, "instances", inst.name))


def test_loaded_as_nova_loads_it(driver):
    from nova.virt.cloudlet import CloudletDriver
    assert type(driver) is CloudletDriver
    assert isinstance(driver, libvirt_driver.LibvirtDriver)
    assert type(driver).__module__ == "nova.virt.cloudlet.driver"
    import nova.virt.cloudlet.driver as module
    assert module.__file__.startswith(os.path.join(SOURCE, "nova-shim"))  # this tree's


def test_resume_customise_snapshot_synthesize(driver, base, images):
    """A developer boots the base image, installs the app, snapshots: the
    overlay lands in Glance and a server with overlay_url=glance://ID is the
    launch VM again."""
    ctx, a = make_instance(image_props=base_props(base))
    spawn(driver, ctx, a)
    assert a.system_metadata["cloudlet_kind"] == "resumed"
    assert a.system_metadata["cloudlet_base_id"] == base
    assert driver.get_info(a).state == power_state.RUNNING
    assert a.uuid in driver.list_instance_uuids()
    ga = harness.Guest.attach(a.name)
    ga.check(CUSTOMISE)
    launch = ga.check(FINGERPRINT)

    image_id = images.add("app-overlay")
    states = []
    driver.snapshot(ctx, a, image_id,
                    lambda task_state, expected_state=None: states.append((task_state, expected_state)))
    assert states == [(task_states.IMAGE_PENDING_UPLOAD, None),
                      (task_states.IMAGE_UPLOADING, task_states.IMAGE_PENDING_UPLOAD)]
    img = images.images[image_id]
    assert img["status"] == "active"
    assert img["properties"]["cloudlet_type"] == "cloudlet_overlay"
    assert img["properties"]["base_sha256_uuid"] == base
    assert img["properties"]["instance_uuid"] == a.uuid
    with cloudlet.Context(store_dir=CONF.cloudlet.store_dir) as lib:
        info = lib.overlay_inspect(images.path(image_id))
    assert info.base_id == base and info.file_bytes == img["size"]
    print("overlay in Glance: %d bytes" % img["size"])
    # The snapshot leaves the instance running, with its state.
    assert driver.get_info(a).state == power_state.RUNNING
    assert ga.check(FINGERPRINT) == launch

    ctx, b = make_instance(metadata={"overlay_url": "glance://" + image_id},
                           image_props=base_props(base))
    spawn(driver, ctx, b)
    assert b.system_metadata["cloudlet_kind"] == "synthesized"
    assert driver.get_info(b).state == power_state.RUNNING
    gb = harness.Guest.attach(b.name)
    assert gb.check(FINGERPRINT) == launch

    for inst, g in ((a, ga), (b, gb)):
        driver.destroy(ctx, inst, network_model.NetworkInfo([]))
        assert gone(driver, inst)
        g.close()
    # destroy of what is gone succeeds (Nova retries deletes)
    driver.destroy(ctx, a, network_model.NetworkInfo([]))


def test_synthesize_from_http_url(driver, base, images, tmp_path):
    """overlay_url as the reference system used it: an http URL, streamed."""
    ctx, a = make_instance(image_props=base_props(base))
    spawn(driver, ctx, a)
    ga = harness.Guest.attach(a.name)
    ga.check(CUSTOMISE)
    launch = ga.check(FINGERPRINT)
    overlay = str(tmp_path / "app.ovl")
    with cloudlet.Context(store_dir=CONF.cloudlet.store_dir) as lib:
        lib.overlay_create(a.name, overlay)
    driver.destroy(ctx, a, network_model.NetworkInfo([]))
    ga.close()
    server = subprocess.Popen(["/usr/bin/python3", os.path.join(SOURCE, "tests/unit/http_test_server.py"),
                               overlay], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().split()[1])
        # no image properties: the overlay names its base; early start asked
        # for by metadata (docs/early-start.md)
        ctx, b = make_instance(metadata={"overlay_url": "http://127.0.0.1:%d/body" % port,
                                         "cloudlet_early_start": "true"})
        spawn(driver, ctx, b)
        assert b.system_metadata.get("cloudlet_early_start") == "1"
    finally:
        server.kill()
        server.wait()
    gb = harness.Guest.attach(b.name)
    assert gb.check(FINGERPRINT) == launch
    driver.destroy(ctx, b, network_model.NetworkInfo([]))
    assert gone(driver, b)
    gb.close()


def test_plain_spawn_takes_the_libvirt_path(driver, images):
    """An ordinary instance is the libvirt driver's: image from Glance into
    instances_path, Nova's domain XML, a running domain (the disk holds no
    OS; the firmware looking for one is a running VM all the same)."""
    image_id = images.add("plain-disk", disk_format="raw", container_format="bare")
    data = os.path.join(images.root, "plain.raw")
    with open(data, "wb") as f:
        f.truncate(1 << 20)
    with open(data, "rb") as f:
        images.update(None, image_id, {}, f)
    ctx, inst = make_instance(image_ref=image_id)
    spawn(driver, ctx, inst, image_meta(image_id, size=1 << 20, min_disk=0, min_ram=0,
                                        name="plain-disk"))
    assert "cloudlet_kind" not in inst.system_metadata
    assert driver.get_info(inst).state == power_state.RUNNING
    assert os.path.isdir(os.path.join(CONF.instances_path, inst.uuid))
    xml = driver._host.get_guest(inst).get_xml_desc()
    assert "<nova:instance" in xml or "nova:" in xml  # Nova's own metadata
    driver.destroy(ctx, inst, network_model.NetworkInfo([]))
    with pytest.raises(exception.InstanceNotFound):
        driver.get_info(inst)
    assert not os.path.exists(os.path.join(CONF.instances_path, inst.uuid))


def _refused(driver, inst, ctx, what, retry_elsewhere=False):
    """Refused: aborted (Nova records the reason as the fault, no reschedule),
    or, where another host may do it, a deploy failure Nova reschedules."""
    with pytest.raises(exception.InstanceDeployFailure if retry_elsewhere
                       else exception.BuildAbortException) as e:
        spawn(driver, ctx, inst)
    assert what in str(e.value), str(e.value)
    assert gone(driver, inst)


def test_refusals_leave_nothing(driver, base, images):
    ctx, i = make_instance(metadata={"overlay_url": "glance://x", "handoff_info": "1"})
    _refused(driver, i, ctx, "both")
    ctx, i = make_instance(metadata={"overlay_url": "x", "cloudlet_early_start": "maybe"})
    _refused(driver, i, ctx, "cloudlet_early_start")
    ctx, i = make_instance(metadata={"overlay_url": "ftp://host/x.ovl"})
    _refused(driver, i, ctx, "use http(s)")
    not_overlay = images.add("just-a-disk", properties={"cloudlet_type": "nothing"})
    ctx, i = make_instance(metadata={"overlay_url": "glance://" + not_overlay})
    _refused(driver, i, ctx, "not a VM overlay")
    ctx, i = make_instance(image_props=base_props("ab" * 32))
    _refused(driver, i, ctx, "no base", retry_elsewhere=True)
    ctx, i = make_instance(image_props={"cloudlet_type": "cloudlet_base_disk"})
    _refused(driver, i, ctx, "base_sha256_uuid")
    CONF.set_override("allow_file_urls", False, group="cloudlet")
    try:
        ctx, i = make_instance(metadata={"overlay_url": "file:///etc/passwd"})
        _refused(driver, i, ctx, "allow_file_urls")
    finally:
        CONF.set_override("allow_file_urls", True, group="cloudlet")
    ctx, i = make_instance(metadata={"overlay_url": "/etc/passwd"})
    _refused(driver, i, ctx, "cloudlet synthesize failed")


def test_handoff_received_as_a_nova_instance(driver, base, tmp_path):
    """Server metadata handoff_info: the spawn listens, and the VM another
    cloudlet hands off (here an instance of the same base on this host, sent
    with libcloudlet as the source's side channel does) becomes this Nova
    instance, with its UUID and state."""
    import socket
    import eventlet
    from eventlet import tpool
    native_sleep = eventlet.patcher.original("time").sleep

    token = tmp_path / "token"
    token.write_bytes(os.urandom(48))
    os.chmod(token, 0o600)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    CONF.set_override("handoff_listen", "127.0.0.1:%d" % port, group="cloudlet")
    CONF.set_override("handoff_token_file", str(token), group="cloudlet")

    source = "cltest-%d-handoff-source" % os.getpid()
    with cloudlet.Context(store_dir=CONF.cloudlet.store_dir) as lib:
        lib.base_resume(base, name=source)
    gs = harness.Guest.attach(source)
    gs.check(CUSTOMISE)
    launch = gs.check(FINGERPRINT)

    def send():  # on a native thread, while spawn waits on another
        with cloudlet.Context(store_dir=CONF.cloudlet.store_dir) as lib:
            for _ in range(300):
                try:
                    return lib.handoff_send(source, "127.0.0.1:%d" % port, str(token))
                except cloudlet.CloudletIOError:  # not listening yet
                    native_sleep(0.1)
        raise AssertionError("the spawn never listened")

    sender = eventlet.spawn(tpool.execute, send)
    ctx, inst = make_instance(metadata={"handoff_info": "1"}, image_props=base_props(base))
    spawn(driver, ctx, inst)
    sent = sender.wait()
    print("handoff: %.2f s, downtime %.2f s, %d bytes" % (sent.total_seconds, sent.downtime_seconds,
                                                          sent.bytes_sent))
    assert sent.uuid == inst.uuid
    assert inst.system_metadata["cloudlet_kind"] == "received"
    assert driver.get_info(inst).state == power_state.RUNNING
    g = harness.Guest.attach(inst.name)
    assert g.check(FINGERPRINT) == launch
    gs.close()  # its domain went with the handoff
    driver.destroy(ctx, inst, network_model.NetworkInfo([]))
    assert gone(driver, inst)
    g.close()


def test_base_missing_here_is_imported_from_glance(driver, base, images, tmp_path):
    """A node that lacks a base imports it from the image the base image
    links (cloudlet_base_package) before resuming it; the import verifies it."""
    package = str(tmp_path / "base.pkg")
    with cloudlet.Context(store_dir=CONF.cloudlet.store_dir) as lib:
        lib.base_export(base, package)
        lib.base_remove(base)
    pkg_id = images.add("novabase-package")
    with open(package, "rb") as f:
        images.update(None, pkg_id, {}, f)
    os.unlink(package)
    props = dict(base_props(base), cloudlet_base_package=pkg_id)
    ctx, inst = make_instance(image_props=props)
    spawn(driver, ctx, inst)
    assert inst.system_metadata["cloudlet_kind"] == "resumed"
    assert driver.get_info(inst).state == power_state.RUNNING
    with cloudlet.Context(store_dir=CONF.cloudlet.store_dir) as lib:
        assert lib.base_show(base, verify=True).status == "ok"
    driver.destroy(ctx, inst, network_model.NetworkInfo([]))
    assert gone(driver, inst)
    # A package holding another base is refused (the ID is checked).
    ctx, other = make_instance(image_props=dict(props, base_sha256_uuid="cd" * 32))
    _refused(driver, other, ctx, "does not hold base " + "cd" * 32)
