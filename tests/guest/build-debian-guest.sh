#!/bin/bash
# Builds the libcloudlet Debian test guest: a real Debian 12 (bookworm)
# system with systemd, booted by SeaBIOS + GRUB from its own disk, with the
# same test shell on the virtio-serial port org.libcloudlet.test.shell as the
# busybox guest (tests/guest/build-guest.sh). docs/testing.md says why each
# choice was made.
#
#   build-debian-guest.sh            print the guest directory, building it if needed
#   CLOUDLET_GUEST_CACHE=DIR         cache root (default: /var/cache/cloudlet-test-guest
#                                    as root, else ~/.cache/cloudlet-test-guest)
#   CLOUDLET_DEBIAN_MIRROR=URL       Debian mirror (default: the host's configured one)
#
# The guest directory debian-<key>/ holds disk.qcow2 (4 GiB virtual: MBR,
# GRUB's core.img behind it, one ext4 partition), VERSION and packages.txt.
# The key is a hash of this script and the files in tests/guest/debian/, so
# edits rebuild it; builds are serialised with flock; older builds are
# removed. Building needs root (debootstrap, chroot) and the host packages
# debootstrap, grub-pc-bin, fdisk (sfdisk), e2fsprogs and qemu-utils; no loop
# device and no mount of the image is used (mkfs.ext4 -d fills the file
# system from a folder). Downloaded .debs are kept in the cache's
# .debian-debs/ so a rebuild after an edit does not download again.
#
# Only the guest directory is printed on stdout; progress goes to stderr.
set -euo pipefail
exec 3>&1 1>&2
t0=$(date +%s)
here=$(cd "$(dirname "$0")" && pwd)
files=("$here"/debian/*)
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/cloudlet-test-guest
else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/cloudlet-test-guest; fi
cache=${CLOUDLET_GUEST_CACHE:-$default_cache}
mkdir -p "$cache"
# libvirt's QEMU (user libvirt-qemu) reads disk.qcow2 as a backing file:
# keep the path traversable. Nothing secret is stored here.
chmod 0755 "$cache"

# A lock of its own: the busybox guest's builds need not wait for this one.
exec 9>"$cache/.lock-debian"
flock 9

key=$(cat "$0" "${files[@]}" | sha256sum | cut -c1-12)
out="$cache/debian-$key"
if [ -f "$out/VERSION" ]; then echo "$out" >&3; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "build-debian-guest: building the Debian guest needs root (debootstrap, chroot)" >&2; exit 1; }
for tool in debootstrap grub-mkimage sfdisk mkfs.ext4 qemu-img unshare; do
	command -v "$tool" >/dev/null || { echo "build-debian-guest: $tool missing (scripts/setup-host installs it)" >&2; exit 1; }
done
grubdir=/usr/lib/grub/i386-pc
[ -f "$grubdir/boot.img" ] || { echo "build-debian-guest: $grubdir/boot.img missing (grub-pc-bin)" >&2; exit 1; }

# The host's configured Debian mirror: the first bookworm "main" source in
# /etc/apt/sources.list.d/*.sources (deb822) or *.list / sources.list.
find_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN { RS = ""; FS = "\n" }
		{
			uris = ""; suites = ""; comps = ""; types = ""
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
				if ($i ~ /^Suites:/) { suites = " " $i " "; sub(/^ Suites:/, "", suites) }
				if ($i ~ /^Components:/) comps = " " $i " "
				if ($i ~ /^Types:/) types = " " $i " "
			}
			if (types ~ /[ \t]deb[ \t]/ && suites ~ /[ \t]bookworm[ \t]/ && comps ~ /[ \t]main[ \t]/) {
				split(uris, u, /[ \t]+/); print u[1]; exit
			}
		}' "$f"
	done
	{ cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
		awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
		      if ($(i + 1) == "bookworm") for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit } }'
}
mirror=${CLOUDLET_DEBIAN_MIRROR:-$(find_mirror | head -n1 || true)}
[ -n "$mirror" ] || { echo "build-debian-guest: no Debian bookworm mirror configured in /etc/apt/sources.list*" >&2; exit 1; }

step() { echo "build-debian-guest: [$(( $(date +%s) - t0 )) s] $*"; }

work=$(mktemp -d "$cache/.build-debian.XXXXXX")
# --one-file-system: never follow a mount a failed debootstrap might leave.
trap 'rm -rf --one-file-system "$work" "$out.tmp"' EXIT
root=$work/root
debs=$cache/.debian-debs
mkdir -p "$debs"

# Everything a test may ask the guest for. Only Depends are installed by
# debootstrap (no Recommends); dbus because systemd-logind needs it.
include=systemd-sysv,udev,dbus,kmod,linux-image-amd64,initramfs-tools,python3,sqlite3,e2fsprogs,procps,iproute2,util-linux,coreutils

# debootstrap mounts /proc, /sys (and maybe /dev) inside the target; a mount
# namespace of its own makes them vanish when it ends, whatever happens.
step "debootstrap (first stage) bookworm from $mirror"
unshare --mount --propagation private -- \
	debootstrap --foreign --variant=minbase --arch=amd64 --components=main \
	--include="$include" --cache-dir="$debs" bookworm "$root" "$mirror"

# Configuration dpkg and the kernel's initramfs hook must see while the
# packages are installed (second stage).
mkdir -p "$root/etc/dpkg/dpkg.cfg.d" "$root/etc/initramfs-tools/conf.d"
cat >"$root/etc/dpkg/dpkg.cfg.d/01-cloudlet-nodoc" <<'EOF'
# libcloudlet test guest: no documentation on a test VM's disk.
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
EOF
# A small initramfs (the modules to find and mount the root file system,
# not every storage driver): less for GRUB to read through the BIOS and for
# the kernel to unpack, both slow under TCG. virtio_console too: the test
# shell's port then exists when systemd starts, instead of after udev's
# coldplug has loaded the module.
cat >"$root/etc/initramfs-tools/conf.d/cloudlet.conf" <<'EOF'
MODULES=list
COMPRESS=gzip
EOF
cat >"$root/etc/initramfs-tools/modules" <<'EOF'
virtio_pci
virtio_blk
virtio_console
ext4
crc32c_generic
EOF
# Maintainer scripts must not start services (dbus, ...) from the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
step "debootstrap (second stage)"
unshare --mount --propagation private -- chroot "$root" /debootstrap/debootstrap --second-stage
rm -f "$root/usr/sbin/policy-rc.d"

step "configuring the guest"
kver=$(basename "$(ls -1 "$root"/boot/vmlinuz-* | sort -V | tail -n1)")
kver=${kver#vmlinuz-}
[ -f "$root/boot/initrd.img-$kver" ] || { echo "build-debian-guest: no initrd for kernel $kver" >&2; exit 1; }
uuid=$(cat /proc/sys/kernel/random/uuid)

echo cloudlet-debian >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	cloudlet-debian
::1		localhost ip6-localhost ip6-loopback
EOF
# discard: blocks the guest frees are unmapped down to the qcow2 layer (the
# domain's disk has discard='unmap'). fsck pass 0: nothing to check on a
# fresh overlay of a read-only image, and it costs seconds under TCG.
# /ram: a RAM disk where the busybox guest has one, for tests written for it.
cat >"$root/etc/fstab" <<EOF
UUID=$uuid	/	ext4	rw,discard,errors=remount-ro	0	0
tmpfs	/ram	tmpfs	size=96m	0	0
EOF
mkdir -p "$root/ram"
# QEMU's user-mode networking answers DNS here.
rm -f "$root/etc/resolv.conf"
echo "nameserver 10.0.2.3" >"$root/etc/resolv.conf"
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
EOF

# The test shell and what starts it.
install -m 0755 "$here/debian/cloudlet-test-shell" "$root/usr/local/sbin/cloudlet-test-shell"
install -m 0644 "$here/debian/cloudlet-test-shell.service" "$root/etc/systemd/system/cloudlet-test-shell.service"
install -m 0644 "$here/debian/99-cloudlet-test-shell.rules" "$root/etc/udev/rules.d/99-cloudlet-test-shell.rules"
install -m 0644 "$here/debian/50-cloudlet-ether.network" "$root/etc/systemd/network/50-cloudlet-ether.network"

# Root logs in on the serial console without a password (humans reading
# and typing on ttyS0); no getty on tty1 (the domain has no display).
chroot "$root" passwd -q -d root
mkdir -p "$root/etc/systemd/system/serial-getty@ttyS0.service.d"
cat >"$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 - $TERM
EOF
# bash 5.2 wraps every prompt in bracketed-paste escapes; a console reader
# does not want them.
echo 'set enable-bracketed-paste off' >"$root/root/.inputrc"

# systemd-networkd asks for the nl80211 netlink family, which autoloads the
# wireless stack (cfg80211) for nothing; the machine has no floppy drive.
cat >"$root/etc/modprobe.d/cloudlet.conf" <<'EOF'
blacklist cfg80211
blacklist floppy
EOF
systemctl --root="$root" set-default multi-user.target

mkdir -p "$root/etc/systemd/journald.conf.d"
cat >"$root/etc/systemd/journald.conf.d/cloudlet.conf" <<'EOF'
# A test VM's journal lives in RAM: no writes to the disk for it.
[Journal]
Storage=volatile
RuntimeMaxUse=16M
ForwardToConsole=no
EOF

systemctl --root="$root" enable cloudlet-test-shell.service systemd-networkd.service serial-getty@ttyS0.service
rm -f "$root/etc/systemd/system/getty.target.wants/getty@tty1.service"
# What slows the boot down or writes for no reason under TCG: periodic jobs
# (apt, man-db, e2scrub, logrotate, dpkg's database backup, fstrim: the
# tests trim by hand), time sync (no servers to reach; the host's clock is
# QEMU's), network-online waits.
for u in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer e2scrub_reap.service \
	logrotate.timer dpkg-db-backup.timer fstrim.timer systemd-timesyncd.service \
	systemd-networkd-wait-online.service; do
	if [ -e "$root/lib/systemd/system/$u" ] || [ -e "$root/etc/systemd/system/$u" ]; then
		systemctl --root="$root" mask "$u"
	fi
done

# Trim what a test VM never reads (and dpkg would not have installed: see
# 01-cloudlet-nodoc; the first stage unpacks without dpkg).
step "trimming"
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
	"$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian/* "$root"/var/log/*.log \
	"$root"/debootstrap "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
# systemd-hwdb-update and ldconfig run at boot when /usr looks newer than
# the last update (ConditionNeedsUpdate); mark /etc and /var as up to date.
touch "$root/etc/.updated" "$root/var/.updated"
chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' >"$work/packages.txt"

# GRUB for BIOS, on the ext4 partition: its modules and grub.cfg. Booted by
# SeaBIOS: boot.img (MBR) loads core.img (sectors 1..), whose embedded
# config finds the partition by UUID and reads /boot/grub/grub.cfg.
step "GRUB and the disk image"
mkdir -p "$root/boot/grub/i386-pc"
cp "$grubdir"/*.mod "$grubdir"/*.lst "$root/boot/grub/i386-pc/"
# Kernel command line: root by UUID (the initramfs finds it), the console on
# ttyS0, and what makes a TCG boot faster: mitigations=off (page-table
# isolation on a CPU model without PCID means a TLB flush on every kernel
# entry, which TCG pays dearly for), no floppy probing, no audit messages.
# And what docs/overlays.md recommends for every cloudlet base image: freed
# pages are zeroed at once (init_on_free=1), so memory the guest no longer
# uses holds no stale copies that an overlay or a handoff would carry, and
# every free page, not only free 2 MiB blocks, is reported to the host
# through the virtio balloon (page_reporting_order=0).
cmdline="root=UUID=$uuid rw console=ttyS0,115200 mitigations=off audit=0 floppy.allowed_drive_mask=0 systemd.show_status=auto init_on_free=1 page_reporting.page_reporting_order=0"
cat >"$root/boot/grub/grub.cfg" <<EOF
# libcloudlet Debian test guest (tests/guest/build-debian-guest.sh).
set timeout=0
set timeout_style=hidden
set default=0
serial --unit=0 --speed=115200
# Input from the serial line would stop the boot: characters typed (or sent)
# early end GRUB's countdown.
terminal_input console
terminal_output serial console
menuentry 'Debian GNU/Linux 12 (libcloudlet test guest)' {
	search --no-floppy --fs-uuid --set=root $uuid
	echo 'Loading Linux $kver ...'
	linux /boot/vmlinuz-$kver $cmdline
	echo 'Loading initial ramdisk ...'
	initrd /boot/initrd.img-$kver
}
EOF
cat >"$work/early.cfg" <<EOF
search.fs_uuid $uuid root hd0,msdos1
set prefix=(\$root)/boot/grub
EOF
grub-mkimage -O i386-pc -d "$grubdir" -o "$work/core.img" -c "$work/early.cfg" -p /boot/grub \
	biosdisk part_msdos ext2 search_fs_uuid
core_size=$(stat -c %s "$work/core.img")
# core.img lives between the MBR and the partition (sector 2048).
[ "$core_size" -lt $(( (2048 - 1) * 512 )) ] || { echo "build-debian-guest: core.img too big ($core_size bytes)" >&2; exit 1; }

# The disk: 4 GiB, MBR with one bootable Linux partition from 1 MiB to the
# end, ext4 filled from the folder (no loop device, no mount), then GRUB's
# boot code (boot.img's first 440 bytes: the disk signature and partition
# table after it stay) and core.img right after the MBR. boot.img's
# defaults already say core.img starts at sector 1, and grub-mkimage wrote
# core.img's own length into its first sector.
disk=$work/disk.raw
truncate -s 4G "$disk"
printf 'label: dos\nunit: sectors\n\nstart=2048, type=83, bootable\n' | sfdisk -q --no-reread --no-tell-kernel "$disk"
part_sectors=$(( (4 << 30) / 512 - 2048 ))
# lazy_*_init=0: the inode tables and journal are written now (as holes), not
# by ext4lazyinit in every guest's first minutes. No metadata_csum_seed or
# orphan_file: features GRUB 2.06 may not read.
mkfs.ext4 -q -F -b 4096 -U "$uuid" -L cloudlet-root -O ^metadata_csum_seed,^orphan_file \
	-E offset=$((2048 * 512)),lazy_itable_init=0,lazy_journal_init=0 \
	-d "$root" "$disk" $(( part_sectors / 8 ))
dd if="$grubdir/boot.img" of="$disk" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$disk" bs=512 seek=1 conv=notrunc status=none
# The partition table must have survived mkfs.
# (Read whole, then searched: `sfdisk | grep -q` under pipefail fails when
# grep exits before sfdisk is done writing.)
table=$(sfdisk -d "$disk")
grep -q "start= *2048, size= *$part_sectors, type=83, bootable" <<<"$table" ||
	{ echo "build-debian-guest: partition table damaged" >&2; echo "$table" >&2; exit 1; }

mkdir -p "$out.tmp"
qemu-img convert -O qcow2 "$disk" "$out.tmp/disk.qcow2"
cp "$work/packages.txt" "$out.tmp/packages.txt"
cat >"$out.tmp/VERSION" <<EOF
debian=12 (bookworm) mirror=$mirror
kernel=$kver
root_uuid=$uuid
cmdline=$cmdline
built=$(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( $(date +%s) - t0 )) s
EOF
chmod 0755 "$out.tmp"
# The cache is read-only to its users: guests get a qcow2 overlay over it.
chmod 0444 "$out.tmp/disk.qcow2" "$out.tmp/packages.txt" "$out.tmp/VERSION"
mv "$out.tmp" "$out"
step "removing the build folder"
rm -rf --one-file-system "$work"
# Older builds (other script versions) are dead weight: drop them.
for old in "$cache"/debian-*; do
	[ "$old" = "$out" ] || rm -rf "$old"
done
step "done: $out ($(du -h --apparent-size "$out/disk.qcow2" | cut -f1) qcow2)"
echo "$out" >&3
