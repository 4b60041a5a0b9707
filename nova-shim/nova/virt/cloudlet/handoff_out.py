"""The source side of a handoff across clouds (docs/nova.md "Handoff across
clouds"): a VM leaves this host when its server's metadata says where to.

Nova has no driver hook for a metadata change (change_instance_metadata
left the driver interface long ago) and no server action that carries an
address to the driver, and the destination is another cloud, so Nova's own
live migration cannot be the trigger. The client (`openstack cloudlet
handoff`) therefore sets `handoff_to` (ADDR:PORT, from the destination
server's `handoff_address`) and `handoff_token` on the source server, and
this watcher, one green thread per nova-compute, finds such servers of this
host every [cloudlet] handoff_poll_seconds and sends each once. It writes
`handoff_state` ("sending", then "sent" or "failed: <why>") and removes the
token. A failed send leaves the VM running here (the handoff's rule).
"""
import threading

from oslo_log import log as logging

import cloudlet

from nova import context as nova_context
from nova import objects
from nova.virt.cloudlet import conf
from nova.virt.cloudlet import handoff_shared
from nova.virt.cloudlet import properties
from nova.virt.cloudlet import threads

LOG = logging.getLogger(__name__)
CONF = conf.CONF


def _save_metadata(uuid, changes):
    """Apply {key: value or None (remove)} to a server's metadata."""
    ctx = nova_context.get_admin_context()
    inst = objects.Instance.get_by_uuid(ctx, uuid, expected_attrs=["metadata"])
    meta = dict(inst.metadata or {})
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    inst.metadata = meta
    inst.save()


class Watcher:
    def __init__(self, driver):
        self._driver = driver
        self._stop = threading.Event()
        self._busy = set()   # UUIDs being sent
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()

    def _run(self):
        while not self._stop.wait(CONF.cloudlet.handoff_poll_seconds):
            try:
                self._poll()
            except Exception as e:  # the conductor may be briefly away; try again
                LOG.debug("cloudlet: handoff watcher: %s", e)

    def _poll(self):
        ctx = nova_context.get_admin_context()
        for inst in objects.InstanceList.get_by_host(
                ctx, CONF.host, expected_attrs=["metadata", "system_metadata"]):
            meta = inst.metadata or {}
            if (properties.META_HANDOFF_TO not in meta
                    or properties.META_HANDOFF_STATE in meta
                    or inst.uuid in self._busy
                    or not self._driver.is_cloudlet_instance(inst)):
                continue
            self._busy.add(inst.uuid)
            threading.Thread(target=self._send, args=(inst,), daemon=True).start()

    def _send(self, inst):
        meta = inst.metadata
        target = meta[properties.META_HANDOFF_TO].strip()
        token = meta.get(properties.META_HANDOFF_TOKEN, "")
        try:
            _save_metadata(inst.uuid, {properties.META_HANDOFF_STATE: "sending"})
            if len(token) < properties.HANDOFF_TOKEN_MIN:
                raise ValueError("metadata %s must hold the destination's token (>= %d "
                                 "characters)" % (properties.META_HANDOFF_TOKEN,
                                                  properties.HANDOFF_TOKEN_MIN))
            LOG.info("cloudlet: handing off to %s", target, instance=inst)
            with handoff_shared.token_file(token) as path:
                info = threads.execute(self._driver._cloudlet().handoff_send,
                                       inst.name, target, path)
            LOG.info("cloudlet: handed off to %s: %d bytes sent in %.2f s "
                     "(downtime %.3f s)", target, info.bytes_sent,
                     info.total_seconds, info.downtime_seconds, instance=inst)
            state = "sent"
        except (cloudlet.CloudletError, ValueError) as e:
            LOG.error("cloudlet: handoff to %s failed: %s", target, e, instance=inst)
            state = ("failed: %s" % e)[:255]
        finally:
            self._busy.discard(inst.uuid)
        try:
            _save_metadata(inst.uuid, {properties.META_HANDOFF_STATE: state,
                                       properties.META_HANDOFF_TOKEN: None})
        except Exception as e:
            LOG.error("cloudlet: cannot record the handoff's end (%s): %s", state, e,
                      instance=inst)
