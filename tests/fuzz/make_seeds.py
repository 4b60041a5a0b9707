#!/usr/bin/python3
"""Seed corpora for the fuzz targets, made of real files: a real libvirt save
image of the test guest (QEMU stream), a real memory image, base package and
overlay made by libcloudlet from it, and libvirt's real domain capabilities.
Large files are cut to their first MAX bytes (the fuzzers' -max_len): their
headers, tables and first records are what the parsers branch on.

usage: make_seeds.py CORPUS_DIR    (root, libvirtd, a normal build in build/)
"""
import glob
import json
import os
import shutil
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


def main(corpus):
    work = "/var/lib/cloudlet-test/seeds-%d" % os.getpid()
    store = work + "/store"
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)

    def cli(*args):
        return subprocess.run([CLI, "--quiet", "--store", store] + list(args), check=True,
                              capture_output=True, text=True).stdout

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
        finally:
            subprocess.run(["virsh", "-q", "-c", "qemu:///system", "destroy", name], capture_output=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(sys.argv[1])
