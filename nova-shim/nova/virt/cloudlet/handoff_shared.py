"""What the driver's three handoff paths share: a spawn receiving from
another cloud (driver.py), a live migration (live_migration.py) and a send
to another cloud (handoff_out.py)."""
import contextlib
import threading

from nova.virt.cloudlet import conf
from nova.virt.cloudlet import threads

CONF = conf.CONF


def migration_host():
    """This host's address for migration traffic, as Nova's libvirt driver
    takes it: [libvirt] live_migration_inbound_addr, else my_ip."""
    return CONF.libvirt.live_migration_inbound_addr or CONF.my_ip


@contextlib.contextmanager
def token_file(token):
    """The library reads a token from an owner-only file."""
    with conf.work_file("handoff-", ".token") as path:
        with open(path, "w") as f:
            f.write(token)
        yield path


def receive(listener, token_file_path, cancel, **opts):
    """Serve one handoff on `listener` -> HandoffInfo; cancelled when no
    source has finished within [cloudlet] handoff_wait_seconds."""
    wait = threading.Timer(CONF.cloudlet.handoff_wait_seconds, cancel.trigger)
    wait.daemon = True
    wait.start()
    try:
        return threads.execute(listener.receive, token_file_path, cancel=cancel, **opts)
    finally:
        wait.cancel()
