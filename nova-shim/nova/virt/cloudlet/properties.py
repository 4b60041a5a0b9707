"""What makes an instance a cloudlet instance: server metadata and Glance
image properties (the reference system's names, so its bases and overlays
stay recognisable), read into a SpawnPlan.

On Zed, spawn's ImageMeta drops unknown image properties, so the image's
properties are read from the instance's system metadata, where Nova copies
every one of them as ``image_<key>`` (values cut at 255 characters).
"""
import dataclasses

# The metadata keys and image properties are OpenStack++'s conventions,
# shared with the client commands (python-ctypes/cloudlet/openstack.py).
from cloudlet.openstack import (HANDOFF_TOKEN_MIN, META_EARLY_START,  # noqa: F401
                                META_HANDOFF, META_HANDOFF_ADDRESS, META_HANDOFF_STATE,
                                META_HANDOFF_TO, META_HANDOFF_TOKEN,
                                META_OVERLAY_URL, PROP_BASE_ID,
                                PROP_BASE_PACKAGE, PROP_CLOUDLET, PROP_TYPE,
                                TYPE_BASE_DISK, TYPE_OVERLAY)

# system metadata this driver writes (persists across nova-compute restarts)
SYS_BASE_ID = "cloudlet_base_id"             # set on every VM the driver made from a base
SYS_KIND = "cloudlet_kind"                   # "resumed", "synthesized" or "received"
SYS_EARLY_START = "cloudlet_early_start"     # "1": synthesized by early start

SYS_IMAGE_PREFIX = "image_"


class PlanError(ValueError):
    """The metadata asks for something contradictory or malformed."""


@dataclasses.dataclass(frozen=True)
class SpawnPlan:
    kind: str                 # "synthesize", "resume" or "receive"
    base_id: str = None       # from the image, when it is a base
    overlay_url: str = None   # synthesize
    base_package: str = None  # Glance ID of the base package, to import a missing base
    token: str = None         # receive: this handoff's own token (None: the host's file)
    early_start: bool = False  # synthesize: run the VM before the overlay has arrived


def image_property(instance, key):
    sysmeta = instance.system_metadata or {}
    return sysmeta.get(SYS_IMAGE_PREFIX + key)


def _flag(meta, key):
    value = str(meta.get(key, "")).strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise PlanError("metadata %s=%r: say true or false" % (key, meta.get(key)))


def plan_spawn(instance):
    """The cloudlet operation a spawn of `instance` asks for, or None for an
    ordinary instance (the libvirt driver's path)."""
    meta = instance.metadata or {}
    overlay = meta.get(META_OVERLAY_URL)
    handoff = META_HANDOFF in meta
    is_base = image_property(instance, PROP_TYPE) == TYPE_BASE_DISK
    base_id = image_property(instance, PROP_BASE_ID) if is_base else None
    package = image_property(instance, PROP_BASE_PACKAGE) if is_base else None
    if is_base and not base_id:
        raise PlanError("the image says cloudlet_type=%s but has no %s"
                        % (TYPE_BASE_DISK, PROP_BASE_ID))
    if overlay is not None and handoff:
        raise PlanError("metadata has both %s and %s; a VM comes from one of them"
                        % (META_OVERLAY_URL, META_HANDOFF))
    early = _flag(meta, META_EARLY_START)
    if early and overlay is None:
        raise PlanError("metadata %s is for synthesis; it needs %s"
                        % (META_EARLY_START, META_OVERLAY_URL))
    if overlay is not None:
        if not overlay.strip():
            raise PlanError("metadata %s is empty" % META_OVERLAY_URL)
        return SpawnPlan("synthesize", base_id, overlay.strip(), package, early_start=early)
    if handoff:
        token = meta[META_HANDOFF].strip()
        if token in ("", "1", "true", "True"):
            token = None
        elif len(token) < HANDOFF_TOKEN_MIN:
            raise PlanError("metadata %s: a handoff token has at least %d characters"
                            % (META_HANDOFF, HANDOFF_TOKEN_MIN))
        return SpawnPlan("receive", base_id, None, package, token)
    if is_base:
        return SpawnPlan("resume", base_id, None, package)
    return None


def overlay_image_properties(base_id, instance):
    """Glance properties of an overlay made from `instance` (snapshot)."""
    return {
        PROP_CLOUDLET: "True",
        PROP_TYPE: TYPE_OVERLAY,
        PROP_BASE_ID: base_id,
        "instance_uuid": instance.uuid,
        "image_location": "snapshot",
        "image_state": "available",
        "owner_id": instance.project_id,
    }
