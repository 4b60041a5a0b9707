#!/bin/bash
# Builds the libcloudlet test guest from Debian packages, without touching the
# host's kernel or installed packages: the linux-image and busybox-static .debs
# are downloaded (apt-get download) and unpacked into a cache directory.
#
#   build-guest.sh            print the guest directory, building it if needed
#   CLOUDLET_GUEST_CACHE=DIR  cache root (default: /var/cache/cloudlet-test-guest
#                             as root, else ~/.cache/cloudlet-test-guest)
#
# The guest directory holds vmlinuz, initrd.img (busybox + virtio modules +
# tests/guest/init) and a VERSION file. It is keyed by the kernel package
# version and a hash of this script and init, so edits rebuild it. Concurrent
# callers are serialised with flock.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/cloudlet-test-guest
else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/cloudlet-test-guest; fi
cache=${CLOUDLET_GUEST_CACHE:-$default_cache}
mkdir -p "$cache"
# libvirt's QEMU (user libvirt-qemu) reads the kernel and initrd: keep the
# path traversable. Nothing secret is stored here.
chmod 0755 "$cache"

exec 9>"$cache/.lock"
flock 9

kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kpkg" ]; then
    # No package lists (apt-get update never ran): fall back to the newest guest built.
    newest=$(ls -1dt "$cache"/guest-* 2>/dev/null | head -n1 || true)
    if [ -n "$newest" ] && [ -f "$newest/VERSION" ]; then echo "$newest"; exit 0; fi
    echo "build-guest: cannot resolve linux-image-amd64 (run apt-get update)" >&2
    exit 1
fi
kver=$(apt-cache policy "$kpkg" | awk '/Candidate:/ {print $2}')
key=$(cat "$0" "$here/init" | sha256sum | cut -c1-12)
out="$cache/guest-${kpkg#linux-image-}-$kver-$key"
if [ -f "$out/VERSION" ]; then echo "$out"; exit 0; fi

work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
# apt-get download wants to drop privileges to _apt; a private dir it cannot
# write just produces a warning, so download into a world-writable temp dir.
chmod 0777 "$work"
apt-get download -q "$kpkg" busybox-static >&2
mkdir deb root
for d in ./*.deb; do dpkg-deb -x "$d" deb; done
kdir=$(ls -d deb/lib/modules/*)
uname_r=$(basename "$kdir")

# Modules the guest needs, ordered so each comes after what it depends on.
# ext4 (which also mounts ext2): bench/measure_disk_alignment puts a real file
# system on the data disk. crc32c_generic: ext4 asks the crypto API for it.
wanted="virtio_blk virtio_net virtio_pci virtio_console crc32c_generic ext4"
declare -A path seen
while read -r f; do path[$(basename "$f" .ko)]=$f; done < <(find "$kdir" -name '*.ko')
order=()
visit() {
    local m=$1 deps d
    [ -n "${seen[$m]:-}" ] && return
    seen[$m]=1
    [ -n "${path[$m]:-}" ] || { echo "build-guest: module $m not in $kpkg" >&2; exit 1; }
    deps=$(grep -a -o 'depends=[A-Za-z0-9_,-]*' "${path[$m]}" | head -n1 | cut -d= -f2 | tr ',' ' ')
    for d in $deps; do visit "${d//-/_}"; done
    order+=("$m")
}
# virtio_pci binds through virtio_pci_modern_dev/legacy_dev, virtio through virtio_ring.
for m in virtio_ring virtio $wanted; do visit "$m"; done

mkdir -p root/{bin,sbin,etc,proc,sys,dev,lib/modules,tmp,ram}
cp deb/bin/busybox root/bin/busybox
ln -s busybox root/bin/sh   # /init is a #!/bin/sh script
for m in "${order[@]}"; do cp "${path[$m]}" root/lib/modules/; done
printf '%s\n' "${order[@]}" > root/etc/modules.order
cp "$here/init" root/init
chmod 0755 root/init
(cd root && find . | cpio -o -H newc --quiet | gzip -1) > initrd.img

mkdir -p "$out.tmp"
cp "$kdir/../../../boot/vmlinuz-$uname_r" "$out.tmp/vmlinuz"
cp initrd.img "$out.tmp/initrd.img"
printf 'kernel=%s %s\nmodules=%s\n' "$kpkg" "$kver" "${order[*]}" > "$out.tmp/VERSION"
chmod -R a+rX "$out.tmp"
mv "$out.tmp" "$out"
# Older builds (other kernel or script versions) are dead weight: drop them.
for old in "$cache"/guest-*; do
    [ "$old" = "$out" ] || rm -rf "$old"
done
echo "$out"
