"""openstack cloudlet ...: what OpenStack's standard commands lack for
OpenStack++ (docs/openstack.md). Everything else is a standard command:
resume and synthesis are `openstack server create`, an overlay is
`openstack server image create`.

    openstack cloudlet base import PACKAGE [--name NAME]
    openstack cloudlet base list
    openstack cloudlet overlay list [--base BASE_ID]
    openstack cloudlet overlay download IMAGE [--file PATH]

The package and overlay files are read with libcloudlet (python3-cloudlet)
on the client: a package's base ID comes from its header, a downloaded
overlay is checked to be one before the command says so.
"""
import contextlib
import os
import shutil
import tempfile

from osc_lib.command import command
from osc_lib import exceptions

import cloudlet
from cloudlet import openstack as conv


@contextlib.contextmanager
def _library():
    """A libcloudlet context for reading files; its store is a throwaway
    folder (reading a package or an overlay touches no store)."""
    tmp = tempfile.mkdtemp(prefix="cloudlet-osc-")
    try:
        with cloudlet.Context(store_dir=tmp) as ctx:
            yield ctx
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _images(conn, kind):
    return [i for i in conn.image.images()
            if (i.properties or {}).get(conv.PROP_TYPE) == kind]


def _short(base_id):
    return (base_id or "")[:12]


class ImportBase(command.ShowOne):
    """Import a base VM package (`cloudlet base export`) into Glance.

    Uploads the package and creates the base image that links it, with the
    properties the cloudlet compute driver reads; boot the base image to
    resume the base. The package's parts are verified by each compute host
    when it first imports it.
    """

    def get_parser(self, prog_name):
        p = super().get_parser(prog_name)
        p.add_argument("package", metavar="<package>", help="base package file")
        p.add_argument("--name", metavar="<name>",
                       help="base image name (default: the base's name)")
        p.add_argument("--public", action="store_true",
                       help="make both images public (admin only)")
        return p

    def take_action(self, args):
        conn = self.app.client_manager.sdk_connection
        base, pkg, info, name = import_base(conn, args.package, args.name,
                                            "public" if args.public else "private")
        return (("base_image", "package_image", "base_id", "name", "package_bytes"),
                (base.id, pkg.id, info.id, name, os.path.getsize(args.package)))


def import_base(conn, package, name=None, visibility="private"):
    """Upload a base package and the base image linking it -> (base image,
    package image, package info, name)."""
    try:
        with _library() as ctx:
            info = ctx.base_package_inspect(package)
    except cloudlet.CloudletError as e:
        raise exceptions.CommandError("%s is not a usable base package: %s"
                                      % (package, e.message))
    name = name or info.name
    pkg = conn.image.create_image(
        name=name + "-package", disk_format="raw", container_format="bare",
        visibility=visibility, filename=package, allow_duplicates=True,
        **conv.package_image_properties(info.id))
    try:
        # The image users boot: Nova's scheduler wants an image; the
        # driver never reads its data for a cloudlet spawn.
        base = conn.image.create_image(
            name=name, disk_format="raw", container_format="bare",
            visibility=visibility, data=b"\0" * 4096, allow_duplicates=True,
            **conv.base_image_properties(info.id, pkg.id))
    except Exception:
        conn.image.delete_image(pkg, ignore_missing=True)
        raise
    return base, pkg, info, name


class ListBases(command.Lister):
    """List base VM images (bootable: `openstack server create --image`)."""

    def take_action(self, args):
        conn = self.app.client_manager.sdk_connection
        rows = []
        for i in _images(conn, conv.TYPE_BASE_DISK):
            p = i.properties or {}
            rows.append((i.id, i.name, _short(p.get(conv.PROP_BASE_ID)),
                         p.get(conv.PROP_BASE_PACKAGE, ""), i.visibility))
        return (("ID", "Name", "Base ID", "Package image", "Visibility"), rows)


class ListOverlays(command.Lister):
    """List VM overlay images (synthesize one with
    `openstack server create --property overlay_url=glance://ID`)."""

    def get_parser(self, prog_name):
        p = super().get_parser(prog_name)
        p.add_argument("--base", metavar="<base-id>",
                       help="only overlays of this base (ID or a prefix)")
        return p

    def take_action(self, args):
        conn = self.app.client_manager.sdk_connection
        rows = []
        for i in _images(conn, conv.TYPE_OVERLAY):
            base_id = (i.properties or {}).get(conv.PROP_BASE_ID, "")
            if args.base and not base_id.startswith(args.base):
                continue
            rows.append((i.id, i.name, _short(base_id), i.size, i.created_at))
        return (("ID", "Name", "Base ID", "Size", "Created"), rows)


class DownloadOverlay(command.ShowOne):
    """Download a VM overlay image and check that it is one."""

    def get_parser(self, prog_name):
        p = super().get_parser(prog_name)
        p.add_argument("image", metavar="<image>", help="overlay image (name or ID)")
        p.add_argument("--file", metavar="<path>",
                       help="where to write it (default: <image name>.ovl)")
        return p

    def take_action(self, args):
        conn = self.app.client_manager.sdk_connection
        img = conn.image.find_image(args.image, ignore_missing=False)
        kind = (img.properties or {}).get(conv.PROP_TYPE)
        if kind != conv.TYPE_OVERLAY:
            raise exceptions.CommandError("image %s is not a VM overlay (%s=%r)"
                                          % (img.id, conv.PROP_TYPE, kind))
        path = args.file or img.name + ".ovl"
        part = path + ".part"
        try:
            with open(part, "wb") as f:
                conn.image.download_image(img, output=f)
            with _library() as ctx:
                info = ctx.overlay_inspect(part)
            os.replace(part, path)
        except cloudlet.CloudletError as e:
            raise exceptions.CommandError("image %s is not a valid overlay: %s"
                                          % (img.id, e.message))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
        return (("file", "bytes", "base_id", "image"),
                (path, os.path.getsize(path), info.base_id, img.id))
