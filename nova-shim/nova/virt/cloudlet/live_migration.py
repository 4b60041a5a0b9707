"""Nova live migration of a cloudlet instance, carried by the cloudlet
handoff (docs/nova.md "Live migration").

Nova's sequence is kept: the conductor schedules and claims, the source
checks, the destination prepares in pre_live_migration, the source's
driver moves the VM in live_migration and then calls Nova's post or
recover method, which update Nova's records (host, port bindings, the
migration, allocations) as after any live migration. Only the transport
differs: the destination listens for a handoff instead of preparing
libvirt's incoming migration, and the source sends the VM over it instead
of calling virDomainMigrate. So only what the destination's base lacks
crosses the link, with the handoff's adaptive compression, and a failure
leaves the VM running on the source (the handoff's own rule).

The one thing Nova's migrate_data has no field for is the handoff's port:
the destination returns "ADDR:PORT" in target_connect_addr, which for a
libvirt migration holds the destination's address for migration traffic
(the same meaning, with the port the destination chose). The secret both
ends prove is [cloudlet] handoff_token_file, which the operator installs
on every compute host, as Nova's own migration needs libvirt TLS or SSH
trust between them.
"""
import threading

from oslo_log import log as logging

import cloudlet

from nova.virt.cloudlet import conf
from nova.virt.cloudlet import handoff_shared
from nova.virt.cloudlet import threads

LOG = logging.getLogger(__name__)
CONF = conf.CONF


def listen_address():
    """Where this host, as a destination, listens: Nova's own address for
    migration traffic, and the configured port (0: any)."""
    return "%s:%d" % (handoff_shared.migration_host(), CONF.cloudlet.live_migration_port)


class Receiving:
    """The destination's side of one migration: a listener, and a thread
    serving the one handoff it accepts.

    Started by pre_live_migration (which must return for the source to
    start), joined by post_live_migration_at_destination, cancelled by
    rollback_live_migration_at_destination."""

    def __init__(self, ctx, instance, nic_xml):
        self.cancel = cloudlet.Cancel()
        self.listener = ctx.handoff_listen(listen_address())
        self.target = "%s:%d" % (handoff_shared.migration_host(), self.listener.port)
        self.info = None
        self.error = None
        self._opts = dict(name=instance.name, uuid=instance.uuid,
                          virt_type=CONF.libvirt.virt_type)
        if nic_xml:
            self._opts["nic_xml"] = nic_xml
        self._uuid = instance.uuid
        # A green thread under nova-compute's eventlet (the library call
        # itself runs in a native one, threads.execute).
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            self.info = handoff_shared.receive(self.listener, CONF.cloudlet.handoff_token_file,
                                               self.cancel, **self._opts)
            LOG.info("cloudlet: live migration received %s (%d bytes in, %.2f s)",
                     self._uuid, self.info.bytes_received, self.info.total_seconds)
        except cloudlet.CloudletError as e:
            self.error = e
            LOG.error("cloudlet: live migration of %s not received: %s", self._uuid, e)
        finally:
            self.listener.close()

    def finish(self, timeout):
        """Wait for the handoff to end -> its HandoffInfo; raises what it
        failed with (or a timeout)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.cancel.trigger()
            self._thread.join()
            raise TimeoutError(
                "the handoff had not ended %d s after the source finished" % timeout)
        self.cancel.close()
        if self.error is not None:
            raise self.error
        return self.info

    def abandon(self):
        """Stop waiting and undo: the receive removes what it made."""
        self.cancel.trigger()
        self._thread.join()
        self.cancel.close()


def send(ctx, instance, target, cancel):
    """The source's side: hand the running VM to `target` -> HandoffInfo."""
    return threads.execute(ctx.handoff_send, instance.name, target,
                           CONF.cloudlet.handoff_token_file, cancel=cancel)
