"""The [cloudlet] options of nova.conf (registered on import), and the
paths they give."""
import contextlib
import os
import tempfile

from oslo_config import cfg

import nova.conf

CONF = nova.conf.CONF

cloudlet_opts = [
    cfg.StrOpt("store_dir",
               help="libcloudlet's store (bases, instance files). Default: "
                    "$state_path/cloudlet, writable by nova-compute's user."),
    cfg.StrOpt("cpu_model", default="core2duo",
               help="The guest CPU model bases are created with and every "
                    "resume enforces; keep it equal to [libvirt] cpu_models."),
    cfg.BoolOpt("allow_file_urls", default=False,
                help="Accept overlay_url values naming files on the compute "
                     "host (file:///... or an absolute path). Off: a tenant "
                     "could otherwise make the host read any local file."),
    cfg.StrOpt("work_dir",
               help="Where overlays are staged (snapshot uploads, Glance "
                    "downloads). Default: <store_dir>/tmp."),
    cfg.IntOpt("max_overlay_mb", default=16384, min=1,
               help="Refuse overlays larger than this (downloads included)."),
    cfg.StrOpt("handoff_listen", default="0.0.0.0:7300",
               help="ADDR:PORT a spawn with metadata handoff_info listens on "
                    "for the VM handed off from another cloudlet (port 0: any "
                    "free port, one per handoff)."),
    cfg.StrOpt("handoff_address",
               help="The address other clouds reach this host's handoff "
                    "listener at, published in the receiving server's metadata "
                    "(handoff_address). Default: [libvirt] "
                    "live_migration_inbound_addr, else my_ip."),
    cfg.StrOpt("handoff_token_file", default="/etc/nova/cloudlet-handoff.token",
               help="The handoff secret shared with the other cloudlets "
                    "(>= 32 bytes, mode 0600, readable by nova-compute)."),
    cfg.FloatOpt("delete_poll_seconds", default=2.0, min=0.1,
                 help="how often a cloudlet spawn checks whether its instance is "
                      "being deleted (a delete waits for the build otherwise)"),
    cfg.IntOpt("handoff_wait_seconds", default=600, min=1,
               help="How long a handoff spawn, or the destination of a live "
                    "migration, waits for the source to connect."),
    cfg.FloatOpt("handoff_poll_seconds", default=2.0, min=0.1,
                 help="How often this host looks for its servers whose metadata "
                      "asks for a handoff to another cloud (handoff_to)."),
    cfg.PortOpt("live_migration_port", default=0,
                help="The port a live migration's destination listens on for "
                     "the cloudlet handoff (at [libvirt] "
                     "live_migration_inbound_addr, else my_ip). 0: any free "
                     "port, one per migration; the source learns it from the "
                     "destination through Nova."),
]

CONF.register_opts(cloudlet_opts, group="cloudlet")


def store_dir():
    return CONF.cloudlet.store_dir or os.path.join(CONF.state_path, "cloudlet")


def work_dir():
    return CONF.cloudlet.work_dir or os.path.join(store_dir(), "tmp")


@contextlib.contextmanager
def work_file(prefix, suffix):
    """A new empty file in the work folder (made 0700 if missing), removed
    when the block ends however it ends."""
    work = work_dir()
    os.makedirs(work, mode=0o700, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=work)
    os.close(fd)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def list_opts():
    """For oslo-config-generator."""
    return [("cloudlet", cloudlet_opts)]
