"""openstack cloudlet handoff SERVER --to-cloud NAME: VM handoff to another
cloud (the seed's section 4.5), with no step on either compute host.

1. Authenticate to the destination cloud (a clouds.yaml entry: its
   endpoint and credentials stay with the user, never stored by a cloud).
   Wrong credentials stop here; nothing has changed anywhere.
2. Find the base there (an image with the same base ID); when the
   destination project lacks it, copy the base package over from this
   cloud's Glance.
3. Boot the receiving server there from the base image, with metadata
   handoff_info=<a fresh token>; its host listens and writes
   handoff_address.
4. Set handoff_to=<that address> and handoff_token on the source server;
   its host sends the VM (nova-shim/nova/virt/cloudlet/handoff_out.py).
5. When the new server is ACTIVE, delete the source server. On any
   failure the source VM keeps running, the receiving server is deleted and
   the handoff_* metadata removed from the source.
"""
import contextlib
import os
import secrets
import tempfile
import time

import openstack
from osc_lib.command import command
from osc_lib import exceptions

from cloudlet import openstack as conv
from cloudlet_osc import commands

HANDOFF_KEYS = (conv.META_HANDOFF_TO, conv.META_HANDOFF_TOKEN, conv.META_HANDOFF_STATE)


def _base_id_of(conn, server):
    image_id = (server.image or {}).get("id")
    img = conn.image.get_image(image_id) if image_id else None
    props = (img.properties or {}) if img else {}
    if props.get(conv.PROP_TYPE) != conv.TYPE_BASE_DISK or not props.get(conv.PROP_BASE_ID):
        raise exceptions.CommandError(
            "server %s was not made from a cloudlet base image: only cloudlet "
            "instances can be handed off" % server.id)
    return props[conv.PROP_BASE_ID], props.get(conv.PROP_BASE_PACKAGE)


def _destination_base(src, dst, base_id, package_id, log):
    for img in dst.image.images():
        p = img.properties or {}
        if p.get(conv.PROP_TYPE) == conv.TYPE_BASE_DISK and p.get(conv.PROP_BASE_ID) == base_id:
            return img
    if not package_id:
        raise exceptions.CommandError("the destination has no image of base %s and the "
                                      "source's base image names no package" % base_id[:12])
    log("copying base %s to the destination cloud" % base_id[:12])
    fd, path = tempfile.mkstemp(prefix="cloudlet-base-", suffix=".pkg")
    try:
        with os.fdopen(fd, "wb") as f:
            src.image.download_image(src.image.get_image(package_id), output=f)
        base, _, info, _ = commands.import_base(dst, path)
    finally:
        os.unlink(path)
    if info.id != base_id:
        raise exceptions.CommandError("package image %s holds base %s, not %s"
                                      % (package_id, info.id, base_id))
    deadline = time.monotonic() + 600
    while dst.image.get_image(base.id).status != "active":
        if time.monotonic() > deadline:
            raise exceptions.CommandError("the copied base image did not become active")
        time.sleep(1)
    return base


def _still_waiting(server, deadline, failed, late):
    """Raise if the destination server failed or time is up; else pause."""
    if server.status == "ERROR":
        raise exceptions.CommandError("%s: %s" % (failed, (server.fault or {}).get("message", "ERROR")))
    if time.monotonic() > deadline:
        raise exceptions.CommandError(late)
    time.sleep(1)


class Handoff(command.ShowOne):
    """Hand a running cloudlet server off to another cloud.

    The VM arrives running as a new server in the destination cloud (same
    memory and disk state), and this server is deleted. Only what the
    destination's base lacks crosses the network.
    """

    def get_parser(self, prog_name):
        p = super().get_parser(prog_name)
        p.add_argument("server", metavar="<server>", help="the server to hand off")
        p.add_argument("--to-cloud", metavar="<cloud>", required=True,
                       help="the destination: a cloud of clouds.yaml (its endpoint "
                            "and credentials)")
        p.add_argument("--network", metavar="<network>",
                       help="destination network (default: the one named like the "
                            "server's, else the only one there)")
        p.add_argument("--flavor", metavar="<flavor>",
                       help="destination flavor (default: the server's flavor name)")
        p.add_argument("--name", metavar="<name>", help="new server's name (default: same)")
        p.add_argument("--timeout", metavar="<seconds>", type=int, default=1800,
                       help="give up (and leave the source running) after this long")
        p.add_argument("--keep-source", action="store_true",
                       help="do not delete the source server after the handoff")
        return p

    def _log(self, msg):
        self.app.stderr.write("handoff: %s\n" % msg)

    def take_action(self, args):
        src = self.app.client_manager.sdk_connection
        t0 = time.monotonic()
        server = src.compute.find_server(args.server, ignore_missing=False)
        server = src.compute.get_server(server.id)
        if server.status != "ACTIVE":
            raise exceptions.CommandError("server %s is %s; only a running server can be "
                                          "handed off" % (server.id, server.status))
        base_id, package_id = _base_id_of(src, server)
        try:
            dst = openstack.connect(cloud=args.to_cloud)
            dst.authorize()
        except Exception as e:  # keystoneauth's and openstacksdk's errors alike
            raise exceptions.CommandError("cannot authenticate to the destination cloud %r: %s"
                                          % (args.to_cloud, e))
        image = _destination_base(src, dst, base_id, package_id, self._log)
        flavor = dst.compute.find_flavor(args.flavor or server.flavor.get("original_name"),
                                         ignore_missing=True)
        if flavor is None:
            raise exceptions.CommandError("the destination has no flavor %r (--flavor)"
                                          % (args.flavor or server.flavor.get("original_name")))
        network = self._network(dst, server, args.network)
        token = secrets.token_hex(32)
        new = dst.compute.create_server(
            name=args.name or server.name, image_id=image.id, flavor_id=flavor.id,
            networks=[{"uuid": network.id}], metadata={conv.META_HANDOFF: token})
        self._log("receiving server %s created in %s" % (new.id, args.to_cloud))
        deadline = t0 + args.timeout
        try:
            address = self._wait_address(dst, new, deadline)
            src.compute.set_server_metadata(server, **{conv.META_HANDOFF_TO: address,
                                                       conv.META_HANDOFF_TOKEN: token})
            self._log("sending to %s" % address)
            new = self._wait_arrived(src, dst, server, new, deadline)
        except BaseException as e:  # Ctrl-C included: undo, the source keeps running
            with contextlib.suppress(Exception):
                dst.compute.delete_server(new)
            with contextlib.suppress(Exception):
                src.compute.delete_server_metadata(server, list(HANDOFF_KEYS))
            if isinstance(e, exceptions.CommandError):
                raise
            if isinstance(e, Exception):
                raise exceptions.CommandError("handoff failed: %s; %s still runs here"
                                              % (e, server.id))
            raise
        if not args.keep_source:
            src.compute.delete_server(server)
        return (("server", "cloud", "host_seconds", "source_deleted"),
                (new.id, args.to_cloud, round(time.monotonic() - t0, 1), not args.keep_source))

    @staticmethod
    def _network(dst, server, name):
        if name:
            return dst.network.find_network(name, ignore_missing=False)
        for net_name in (server.addresses or {}):
            net = dst.network.find_network(net_name, ignore_missing=True)
            if net is not None:
                return net
        nets = list(dst.network.networks())
        if len(nets) != 1:
            raise exceptions.CommandError("say which destination network (--network): %s"
                                          % ", ".join(n.name for n in nets))
        return nets[0]

    @staticmethod
    def _wait_address(dst, new, deadline):
        while True:
            s = dst.compute.get_server(new.id)
            addr = (s.metadata or {}).get(conv.META_HANDOFF_ADDRESS)
            if addr:
                return addr
            _still_waiting(s, deadline, "the destination could not receive",
                           "the destination did not start listening")

    @staticmethod
    def _wait_arrived(src, dst, server, new, deadline):
        while True:
            s = dst.compute.get_server(new.id)
            if s.status == "ACTIVE":
                return s
            state = (src.compute.get_server_metadata(server).metadata or {}).get(
                conv.META_HANDOFF_STATE, "")
            if state.startswith("failed"):
                raise exceptions.CommandError("the source host could not send: %s"
                                              % state[len("failed: "):])
            _still_waiting(s, deadline, "the destination failed",
                           "the handoff did not finish in time")
