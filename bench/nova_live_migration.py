#!/usr/bin/python3
"""bench/nova_live_migration.py [--mbit N] [BUILD_DIR]: live migration of one
cloudlet instance between the test cloud's two compute hosts, through Nova
(`openstack server migrate --live-migration`, carried by the cloudlet
handoff), beside libvirt's own live migration of the same instance, over the
same link between the hosts held at N Mbit/s (default 25) with tbf.

The baseline is the migration Nova's libvirt driver performs for a block
migration (virDomainMigrateToURI3 with Nova's default flags: live,
peer-to-peer, persist at the destination, undefine at the source, copy the
disks' top layers, not tunnelled) run with virsh, because Nova's libvirt
path does not know a cloudlet instance's disk layers: as Nova's
pre_live_migration would, the bench creates the destination's empty top
layers over the base, which the destination holds (the first migration
imported it; both hosts keep bases at one path). Bytes are what crossed the
link (the veth pair's counters, both ways); time is from the request to a
running VM at the destination. Needs root, the built tree and the guest
images (README); brings the test cloud up if it is not.
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

HOST2_ADDR = "10.231.0.2"  # compute2's end of the link (tests/openstack/cloud: ADDR2)
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(SOURCE, "python-ctypes"), os.path.join(SOURCE, "tests", "harness"),
                os.path.join(SOURCE, "tests", "openstack")]


def link_bytes():
    """Bytes both ways over compute2's veth pair so far."""
    j = json.loads(subprocess.run(["ip", "-s", "-j", "link", "show", "cltc2-h"],
                                  capture_output=True, text=True, check=True).stdout)
    st = j[0]["stats64"]
    return st["rx"]["bytes"] + st["tx"]["bytes"]


def in_host2(*cmd):
    pid = open("/var/lib/cloudlet-openstack/run/host2-ns.pid").read().strip()
    return subprocess.run(["nsenter", "--target", pid, "--mount", "--uts", "--net", "--"] + list(cmd),
                          capture_output=True, text=True, check=True).stdout


def handoff_figures(line):
    """(bytes sent, seconds, downtime, codec) of the driver's log line."""
    m = re.search(r"(\d+) bytes sent in ([\d.]+) s \(downtime ([\d.]+) s, (\S+)\)", line)
    return int(m.group(1)), float(m.group(2)), float(m.group(3)), m.group(4)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mbit", type=int, default=25)
    ap.add_argument("build", nargs="?", default=os.path.join(SOURCE, "build"))
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    os.environ.setdefault("CLOUDLET_LIBRARY", os.path.join(build, "src", "libcloudlet.so.0"))
    os.environ.setdefault("CLOUDLET_TEST_HARNESS",
                          os.path.join(build, "tests", "libcloudlet-testharness.so"))
    subprocess.run([os.path.join(SOURCE, "tests", "openstack", "cloud"), "up", build], check=True)

    import harness
    import openstack
    import test_openstack as T

    harness.setup()
    cl = T.Cloud(openstack.connect(cloud="cloudlet-test-demo"),
                 openstack.connect(cloud="cloudlet-test"))
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-nova-", dir="/var/lib/cloudlet-test"))
    base_id, base, pkg = T.make_base_images(cl, work)
    results = []
    a = None
    try:
        a, launch = cl.customised("bench-migration", base)
        domain = cl.domain(a)
        h1 = [h.host for h in cl.admin.compute.services(binary="nova-compute") if h.host != T.HOST2][0]
        if cl.host(a) == T.HOST2:  # start on this machine's host
            T.live_migrate(a.id, h1)
            assert T.wait_migrated(cl, a)["status"] == "completed"

        # 1. Through Nova: the cloudlet handoff.
        with T.slow_link(args.mbit):
            b0, t0 = link_bytes(), time.monotonic()
            T.live_migrate(a.id, T.HOST2)
            m = T.wait_migrated(cl, a)
            took, moved = time.monotonic() - t0, link_bytes() - b0
        assert m["status"] == "completed", m
        sent, secs, downtime, codec = handoff_figures(T.handoff_logged(h1, T.HOST2, a.id))
        g = cl.guest(a)
        assert g.check(T.FINGERPRINT) == launch
        g.detach()
        results.append(("Nova live migration, cloudlet handoff (%s)" % codec, took, moved,
                        downtime, "handoff itself %.1f s, %d bytes" % (secs, sent)))
        # back, unshaped: the baseline starts from the same host and state
        T.live_migrate(a.id, h1)
        assert T.wait_migrated(cl, a)["status"] == "completed"

        # 2. libvirt's own migration, as Nova's libvirt driver does it.
        disks = [line.split() for line in subprocess.run(
            ["virsh", "-q", "domblklist", domain], capture_output=True, text=True,
            check=True).stdout.splitlines() if line.strip()]
        for target, path in disks:
            info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", path],
                                             capture_output=True, text=True, check=True).stdout)
            in_host2("mkdir", "-p", os.path.dirname(path))
            in_host2("qemu-img", "create", "-q", "-f", "qcow2", "-F",
                     info.get("backing-filename-format", "raw"), "-b", info["backing-filename"],
                     path, str(info["virtual-size"]))
        with T.slow_link(args.mbit):
            b0, t0 = link_bytes(), time.monotonic()
            subprocess.run(["virsh", "migrate", "--live", "--p2p", "--persistent", "--undefinesource",
                            "--copy-storage-inc", "--migrate-disks", ",".join(t for t, _ in disks),
                            domain, "qemu+tcp://%s/system" % HOST2_ADDR,
                            "--migrateuri", "tcp://%s" % HOST2_ADDR],
                           check=True)
            took, moved = time.monotonic() - t0, link_bytes() - b0
        job = subprocess.run(["virsh", "-c", T.HOST2_URI, "domjobinfo", "--completed", domain],
                             capture_output=True, text=True).stdout
        dt = re.search(r"Total downtime:\s+(\d+) ms", job)
        g = harness.Guest.attach(domain, uri=T.HOST2_URI, paths=T.HOST2_PATHS)
        assert g.check(T.FINGERPRINT) == launch
        g.detach()
        results.append(("libvirt live migration, Nova's block-migration flags", took, moved,
                        int(dt.group(1)) / 1000.0 if dt else None, "virsh migrate"))
        # The domain lives on compute2 behind Nova's back: take it away there.
        subprocess.run(["virsh", "-c", T.HOST2_URI, "destroy", domain], capture_output=True)
        subprocess.run(["virsh", "-c", T.HOST2_URI, "undefine", domain], capture_output=True)
        for _, path in disks:
            in_host2("rm", "-rf", os.path.dirname(path))
    finally:
        if a is not None:
            cl.c.compute.delete_server(a)
            cl.c.compute.wait_for_delete(a, interval=2, wait=300)
        T.remove_base_images(cl, base_id, (base, pkg))

    base_t, base_b = results[1][1], results[1][2]
    print("\nlive migration of one cloudlet instance (busybox guest after the app step, "
          "256 MiB RAM) between the test cloud's hosts at %d Mbit/s:" % args.mbit)
    print("| transport | time | bytes on the link | downtime | time vs libvirt | bytes vs libvirt | note |")
    print("|---|---|---|---|---|---|---|")
    for name, t, b, d, note in results:
        print("| %s | %.1f s | %.1f MB | %s | %.2f | %.2f | %s |" % (
            name, t, b / 1e6, "%.3f s" % d if d is not None else "not reported",
            t / base_t, b / base_b, note))


if __name__ == "__main__":
    main()
