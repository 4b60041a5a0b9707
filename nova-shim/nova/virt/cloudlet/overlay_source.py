"""Where a spawn's overlay_url points: what the library reads.

* ``http://`` / ``https://``: handed to libcloudlet, which streams it
  (decoding while it downloads, TLS verified, size-capped).
* ``glance://IMAGE_ID``: an overlay image in this cloud's Glance (what
  snapshot() of a cloudlet instance uploads); downloaded into the work
  folder first, after checking that the image is an overlay.
* ``file:///PATH`` or ``/PATH``: a file on the compute host, only with
  ``[cloudlet] allow_file_urls`` (off by default: server metadata comes from
  tenants, who must not make the host read its own files).
"""
import contextlib
import os
import urllib.parse

from nova.virt.cloudlet import conf
from nova.virt.cloudlet import properties


class SourceError(ValueError):
    pass


@contextlib.contextmanager
def resolve(url, context, image_api):
    """Yields the path or URL to synthesize from; removes any staged copy."""
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        if not parsed.netloc:
            raise SourceError("overlay_url %r has no host" % url)
        yield url
        return
    if scheme == "glance":
        image_id = (parsed.netloc + parsed.path).strip("/")
        if not image_id or "/" in image_id:
            raise SourceError("overlay_url %r: expected glance://IMAGE_ID" % url)
        with _staged_from_glance(image_id, context, image_api) as path:
            yield path
        return
    if scheme == "file" or (scheme == "" and url.startswith("/")):
        if not conf.CONF.cloudlet.allow_file_urls:
            raise SourceError("overlay_url %r names a file on the compute host; "
                              "[cloudlet] allow_file_urls is off" % url)
        path = urllib.parse.unquote(parsed.path) if scheme == "file" else url
        if not os.path.isabs(path):
            raise SourceError("overlay_url %r: the path must be absolute" % url)
        yield path
        return
    raise SourceError("overlay_url %r: use http(s)://, glance://IMAGE_ID or, if "
                      "allowed, file:///PATH" % url)


@contextlib.contextmanager
def _staged_from_glance(image_id, context, image_api):
    meta = image_api.get(context, image_id)
    props = meta.get("properties") or {}
    if props.get(properties.PROP_TYPE) != properties.TYPE_OVERLAY:
        raise SourceError("image %s is not a VM overlay (%s=%r)" % (
            image_id, properties.PROP_TYPE, props.get(properties.PROP_TYPE)))
    size = meta.get("size") or 0
    cap = conf.CONF.cloudlet.max_overlay_mb << 20
    if size > cap:
        raise SourceError("overlay image %s is %d bytes, over [cloudlet] "
                          "max_overlay_mb" % (image_id, size))
    with conf.work_file("overlay-", ".ovl") as path:
        image_api.download(context, image_id, dest_path=path)
        if os.path.getsize(path) > cap:
            raise SourceError("overlay image %s is over [cloudlet] max_overlay_mb"
                              % image_id)
        yield path
