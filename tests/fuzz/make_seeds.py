#!/usr/bin/python3
"""Seed corpora for the fuzz targets, made of real files: a real libvirt save
image of the test guest (QEMU stream), a real memory image, base package and
overlay made by libcloudlet from it, and libvirt's real domain capabilities.
Large files are cut to their first MAX bytes (the fuzzers' -max_len): their
headers, tables and first records are what the parsers branch on. The
handoff target gets one payload of each message as the protocol sends it
(docs/protocols/handoff.md), its OFFER carrying the real overlay's header.

usage: make_seeds.py CORPUS_DIR    (root, libvirtd, a normal build in build/)
"""
import glob
import json
import os
import shutil
import struct
import subprocess
import sys

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("CLOUDLET_LIBRARY", os.path.join(SOURCE, "build", "src", "libcloudlet.so.0"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "harness"))
import harness  # noqa: E402

CLI = os.path.join(SOURCE, "build", "tools", "cloudlet", "cloudlet")
MAX = 1 << 20


def seed(corpus, target, name, path):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(path, "rb") as src, open(os.path.join(d, "real-" + name), "wb") as dst:
        dst.write(src.read(MAX))
    print("seed %-18s %-24s %10d bytes (of %d)" % (target, name, min(MAX, os.path.getsize(path)),
                                                    os.path.getsize(path)))


def seed_bytes(corpus, target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    print("seed %-18s %-24s %10d bytes" % (target, name, len(data)))


def plain_json(o):
    return json.dumps(o, separators=(",", ":")).encode()


def items_batch(records):
    """An ITEMS payload, uncompressed: (space, kind, shift, version, chunk, ref, payload or None)."""
    recs, payload = b"", b""
    for space, kind, shift, version, chunk, ref, data in records:
        recs += struct.pack("<BBhIQQQ", space, kind, shift, 0, version, chunk, ref)
        payload += data or b""
    body = recs + payload
    return struct.pack("<B3xII", 0, len(records), len(body)) + body


def handoff_seeds(corpus):
    t = "fuzz_handoff"
    seed_bytes(corpus, t, "hello", b"CLTHOFF1" + struct.pack("<I", 1) + bytes(range(32)))
    seed_bytes(corpus, t, "accept", b"{}")
    seed_bytes(corpus, t, "refuse", plain_json({"status": -6, "message": "no such base"}))
    seed_bytes(corpus, t, "ack", struct.pack("<QQ", 3, 3 << 20))
    counts = plain_json({"memory_items": 12382, "disk_items": 256, "stored_items": 9427})
    seed_bytes(corpus, t, "final", struct.pack("<I", len(counts)) + counts + b"QEVM device state \x00\x01")
    seed_bytes(corpus, t, "ready", plain_json({"name": "vm", "uuid": "8c3e4f5a-1b2c-4d5e-8f90-a1b2c3d4e5f6"}))
    seed_bytes(corpus, t, "running", plain_json({"name": "vm", "uuid": "8c3e4f5a-1b2c-4d5e-8f90-a1b2c3d4e5f6",
                                                 "macs": ["52:54:00:12:34:56"], "nic_seconds": 0.25,
                                                 "nic_error": "the guest did not unplug its NIC"}))
    page = bytes((i * 7) & 0xff for i in range(4096))
    seed_bytes(corpus, t, "items", items_batch([(0, 1, 0, 1, 5, 0, None), (0, 2, 0, 2, 6, 6, None),
                                                (1, 3, 0, 3, 7, 7 * 4096, None), (0, 5, 0, 4, 8, 0, page),
                                                (0, 4, 0, 5, 9, 0, None), (0, 7, -17, 6, 10, 0, page)]))


def offer_seed(corpus, overlay):
    """The OFFER a handoff of this overlay's VM would send: its real header."""
    with open(overlay, "rb") as f:
        magic, _version, length = struct.unpack("<8sII", f.read(16))
        assert magic == b"CLTOVLv1", overlay
        header = f.read(length).decode()
    seed_bytes(corpus, "fuzz_handoff", "offer", plain_json({"name": "seeds", "header": header}))


def main(corpus):
    work = "/var/lib/cloudlet-test/seeds-%d" % os.getpid()
    store = work + "/store"
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)

    def cli(*args):
        return subprocess.run([CLI, "--quiet", "--store", store] + list(args), check=True,
                              capture_output=True, text=True).stdout

    handoff_seeds(corpus)
    try:
        for x in glob.glob(os.path.join(SOURCE, "tests", "data", "domcaps-*.xml")):
            seed(corpus, "fuzz_domcaps", os.path.basename(x), x)
        live = work + "/domcaps-live.xml"
        with open(live, "w") as f:
            f.write(subprocess.run(["virsh", "-c", "qemu:///system", "domcapabilities", "--virttype", "qemu"],
                                   check=True, capture_output=True, text=True).stdout)
        seed(corpus, "fuzz_domcaps", "domcaps-live.xml", live)

        harness.setup()
        g = harness.Guest.start("seeds")
        try:
            cli("snapshot", "capture", g.domain, work + "/guest.cltmem", "--format", "memory-image")
            seed(corpus, "fuzz_memory_image", "guest.cltmem", work + "/guest.cltmem")
            cli("snapshot", "capture", g.domain, work + "/guest.save")
            seed(corpus, "fuzz_qemu_stream", "guest.save", work + "/guest.save")
            cli("base", "create", g.domain, "--name", "seeds", "--stop")
        finally:
            g.close()
        cli("base", "export", "seeds", work + "/seeds.pkg")
        seed(corpus, "fuzz_base_package", "seeds.pkg", work + "/seeds.pkg")
        name = "cltest-%d-seeds" % os.getpid()
        cli("base", "resume", "seeds", "--name", name)
        try:
            for codec in ("zstd", "lzma", "none"):
                out = work + "/app-%s.ovl" % codec
                cli("overlay", "create", name, out, "--codec", codec)
                seed(corpus, "fuzz_overlay", os.path.basename(out), out)
            offer_seed(corpus, work + "/app-zstd.ovl")
        finally:
            subprocess.run(["virsh", "-q", "-c", "qemu:///system", "destroy", name], capture_output=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(sys.argv[1])
