"""OpenStack++ conventions: the server metadata and Glance image properties
that mark cloudlet bases, base packages and overlays (the reference system's
names, so its bases and overlays stay recognisable; docs/nova.md). Their one
home: the Nova driver (nova-shim/) and the client commands (osc-plugin/)
both read them from here."""

# server metadata
META_OVERLAY_URL = "overlay_url"   # synthesize this overlay
META_EARLY_START = "cloudlet_early_start"  # with overlay_url: "true" runs the VM before
                                           # the overlay has arrived (docs/early-start.md)
# Handoff across clouds (docs/nova.md "Handoff across clouds"):
META_HANDOFF = "handoff_info"      # destination: receive a VM handed off from another
                                   # cloudlet; value: this handoff's token (>= 32
                                   # characters), or "1" for the host's token file
META_HANDOFF_ADDRESS = "handoff_address"  # destination, written by its host: ADDR:PORT
META_HANDOFF_TO = "handoff_to"     # source, set by the client: send the VM to ADDR:PORT
META_HANDOFF_TOKEN = "handoff_token"      # source: the token the destination was given
META_HANDOFF_STATE = "handoff_state"      # source, written by its host: "sending",
                                          # "sent" or "failed: <why>"
HANDOFF_TOKEN_MIN = 32

# Glance image properties
PROP_CLOUDLET = "is_cloudlet"
PROP_TYPE = "cloudlet_type"
PROP_BASE_ID = "base_sha256_uuid"
PROP_BASE_PACKAGE = "cloudlet_base_package"  # on a base image: Glance ID of its package

# values of PROP_TYPE
TYPE_BASE_DISK = "cloudlet_base_disk"        # a base VM users boot
TYPE_BASE_PACKAGE = "cloudlet_base_package"  # the one-file package of `cloudlet base export`
TYPE_OVERLAY = "cloudlet_overlay"            # a VM overlay


def base_image_properties(base_id: str, package_image_id: str) -> dict[str, str]:
    """The base image users boot: it names the base and links its package."""
    return {PROP_CLOUDLET: "True", PROP_TYPE: TYPE_BASE_DISK,
            PROP_BASE_ID: base_id, PROP_BASE_PACKAGE: package_image_id}


def package_image_properties(base_id: str) -> dict[str, str]:
    return {PROP_CLOUDLET: "True", PROP_TYPE: TYPE_BASE_PACKAGE, PROP_BASE_ID: base_id}
