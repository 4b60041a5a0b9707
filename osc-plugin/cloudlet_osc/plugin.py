"""The plugin module OpenStackClient loads (entry point group
openstack.cli.extension). The commands talk to Glance through the
openstacksdk connection OpenStackClient already authenticated; there is no
cloudlet service endpoint to build a client for."""

API_NAME = "cloudlet"
API_VERSION_OPTION = "os_cloudlet_api_version"
API_VERSIONS = {"1": "cloudlet_osc.plugin.Client"}
DEFAULT_API_VERSION = "1"


class Client:
    def __init__(self, instance):
        self.instance = instance


def make_client(instance):
    return Client(instance)


def build_option_parser(parser):
    parser.add_argument("--os-cloudlet-api-version", metavar="<version>",
                        default=DEFAULT_API_VERSION,
                        help="cloudlet commands' version (default: 1)")
    return parser
