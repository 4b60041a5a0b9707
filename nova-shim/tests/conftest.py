"""Nova under test: Debian's python3-nova (Zed) with its real objects and a
real sqlite database, the real libvirt driver against the real libvirtd,
the cloudlet driver loaded the way nova-compute loads it.

What nova-compute does at start that matters here is done the same way:
eventlet monkey patching (the libvirt driver's event thread needs it),
configuration parsed, objects registered, os-vif initialised, privsep run
in-process (we are root, as CI is). The patching waits for the first Nova
test, so that suites run before it in the same process (python-ctypes/,
whose tests need real threads) see an unpatched interpreter.
"""
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "python-ctypes"))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "harness"))  # harness.py

from oslo_log import log as logging  # noqa: E402

import nova.conf  # noqa: E402
from nova import objects  # noqa: E402
import nova.virt  # noqa: E402

# Where Nova finds the driver once installed (nova/virt/cloudlet), here
# from the source tree (ahead of an installed copy): nova.virt is a
# namespace package.
nova.virt.__path__.insert(0, os.path.join(SOURCE, "nova-shim", "nova", "virt"))

CONF = nova.conf.CONF
logging.register_options(CONF)
CONF([], project="nova", default_config_files=[])
objects.register_all()

# Everything of this run under one folder QEMU's user can reach; names
# carry the pid so the harness sweeps what a crashed run left.
RUN = "/var/lib/cloudlet-test/nova-%d" % os.getpid()


def _configure():
    import eventlet
    eventlet.monkey_patch()
    os.makedirs(RUN + "/instances", exist_ok=True)
    os.makedirs(RUN + "/locks", exist_ok=True)
    for d in ("/var/lib/cloudlet-test", RUN, RUN + "/instances"):
        os.chmod(d, 0o755)
    o = CONF.set_override
    o("virt_type", os.environ.get("CLOUDLET_TEST_VIRT_TYPE", "qemu"), group="libvirt")
    o("connection_uri", "qemu:///system", group="libvirt")
    o("cpu_mode", "custom", group="libvirt")
    o("cpu_models", ["core2duo"], group="libvirt")
    o("instances_path", RUN + "/instances")
    o("state_path", RUN)
    o("my_ip", "127.0.0.1")
    o("host", "testhost")
    o("instance_name_template", "cltest-%d-nova-%%08x" % os.getpid())
    o("lock_path", RUN + "/locks", group="oslo_concurrency")
    o("connection", "sqlite:///" + RUN + "/nova.sqlite", group="database")
    # What the compute manager registers when it starts.
    import nova.conf.devices
    import nova.conf.neutron
    nova.conf.neutron.register_dynamic_opts(CONF)
    nova.conf.devices.register_dynamic_opts(CONF)
    from nova.db import migration
    migration.db_sync(database="main")
    import nova.privsep
    nova.privsep.sys_admin_pctxt.set_client_mode(False)
    import os_vif
    os_vif.initialize()
    import nova.virt.cloudlet.conf  # noqa: F401  registers [cloudlet]
    o("store_dir", RUN + "/store", group="cloudlet")
    o("allow_file_urls", True, group="cloudlet")


@pytest.fixture(scope="session")
def nova_env():
    import harness
    harness.setup()  # libvirtd up, leftovers of dead runs swept
    _configure()
    yield RUN
    shutil.rmtree(RUN, ignore_errors=True)


@pytest.fixture(scope="session")
def driver(nova_env):
    from nova.virt import driver as virt_driver
    from nova.virt import fake
    drv = virt_driver.load_compute_driver(fake.FakeVirtAPI(), "cloudlet.CloudletDriver")
    drv.init_host("testhost")
    yield drv
    drv.cleanup_host("testhost")
