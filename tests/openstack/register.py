#!/usr/bin/python3
"""Registers what the test cloud's services need in Keystone, Neutron and
Nova, through their APIs (openstacksdk), idempotently: what exists is kept.

    register.py identity PASSWORD   service project, users, services, endpoints,
                                    the tenant project "demo" and its user
    register.py resources PASSWORD   the provider network, its subnet, flavors,
                                    and project "other" with its user: the
                                    destination "cloud" of cross-cloud handoffs

One process for all of it: each `openstack` CLI call costs 2-4 s here.
"""
import sys

import openstack

URL = "http://127.0.0.1"
REGION = "RegionOne"
SERVICES = [
    # name, type, URL
    ("glance", "image", URL + ":9292"),
    ("placement", "placement", URL + ":8778"),
    ("nova", "compute", URL + ":8774/v2.1"),
    ("neutron", "network", URL + ":9696"),
]


def admin():
    return openstack.connect(cloud="cloudlet-test")


def identity(password):
    c = admin()
    ident = c.identity
    default = ident.find_domain("Default")
    def project(name, desc):
        return ident.find_project(name, domain_id=default.id) or ident.create_project(
            name=name, domain_id=default.id, description=desc)
    service = project("service", "OpenStack services")
    demo = project("demo", "tenant of the cloudlet tests")
    roles = {r.name: r for r in ident.roles()}
    for name in ("member", "reader"):
        if name not in roles:
            roles[name] = ident.create_role(name=name)

    def user(name, proj, role):
        u = ident.find_user(name, domain_id=default.id)
        if u is None:
            u = ident.create_user(name=name, password=password, domain_id=default.id,
                                  default_project_id=proj.id)
        else:
            ident.update_user(u, password=password)
        ident.assign_project_role_to_user(proj, u, roles[role])
    for name, _, _ in SERVICES:
        user(name, service, "admin")
    user("demo", demo, "member")

    for name, kind, url in SERVICES:
        svc = next((s for s in ident.services() if s.type == kind), None)
        if svc is None:
            svc = ident.create_service(name=name, type=kind, enabled=True)
        have = {e.interface for e in ident.endpoints(service_id=svc.id)}
        for iface in ("public", "internal", "admin"):
            if iface not in have:
                ident.create_endpoint(service_id=svc.id, interface=iface, url=url,
                                      region_id=REGION)


def other_tenant(c, password):
    """Project "other" and its user: a second project of this Keystone stands
    in for a second cloud (its own credentials, images, servers and quotas;
    docs/openstack.md says why not a second Keystone)."""
    ident = c.identity
    default = ident.find_domain("Default")
    proj = ident.find_project("other", domain_id=default.id) or ident.create_project(
        name="other", domain_id=default.id, description="the other cloud of handoff tests")
    u = ident.find_user("other", domain_id=default.id)
    if u is None:
        u = ident.create_user(name="other", password=password, domain_id=default.id,
                              default_project_id=proj.id)
    member = ident.find_role("member")
    ident.assign_project_role_to_user(proj, u, member)


def resources(password):
    c = admin()
    other_tenant(c, password)
    net = c.network.find_network("provider")
    if net is None:
        net = c.network.create_network(
            name="provider", shared=True, provider_network_type="flat",
            provider_physical_network="provider")
    if not list(c.network.subnets(network_id=net.id)):
        # No DHCP: the tests reach guests through their serial console, and
        # what they check of the network is the MAC Neutron gave the port.
        c.network.create_subnet(network_id=net.id, name="provider-v4", ip_version=4,
                                cidr="10.199.0.0/24", enable_dhcp=False,
                                gateway_ip="10.199.0.1")
    # The busybox test guest (256 MiB) and the Debian guest (2 GiB, 2 vCPUs).
    for name, ram, vcpus, disk in (("cloudlet.small", 256, 1, 1),
                                   ("cloudlet.debian", 2048, 2, 5)):
        if c.compute.find_flavor(name) is None:
            c.compute.create_flavor(name=name, ram=ram, vcpus=vcpus, disk=disk,
                                    is_public=True)


if __name__ == "__main__":
    if sys.argv[1] == "identity":
        identity(sys.argv[2])
    elif sys.argv[1] == "resources":
        resources(sys.argv[2])
    else:
        sys.exit("register.py identity PASSWORD | resources PASSWORD")
