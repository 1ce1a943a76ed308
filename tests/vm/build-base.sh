#!/bin/bash
# Builds the VM image's base root filesystem once: debootstrapped Debian 12 (minbase) with
# systemd, D-Bus, polkit, libostree, a kernel and a small uncompressed dracut initramfs with
# ostree's boot module (TCG pays heavily for decompression). The result, base.tar, is cached
# under $BERTH_VM_CACHE (default: target/vm-cache) keyed by this script's hash; later runs
# reuse it. Runs as root inside a private mount namespace (chroot needs /proc, /sys, /dev).
# Usage: tests/vm/build-base.sh  -> prints the path of base.tar
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
CACHE=${BERTH_VM_CACHE:-$PWD/target/vm-cache}
KEY=$(sha256sum tests/vm/build-base.sh | cut -c1-16)
OUT=$CACHE/base-$KEY.tar
if [ -s "$OUT" ]; then echo "$OUT"; exit 0; fi
if [ "${1:-}" != "--inside" ]; then
  exec unshare --mount --propagation private "$0" --inside
fi
mkdir -p "$CACHE"
R=$CACHE/rootfs-$KEY
rm -rf "$R"
MIRROR=${MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
log=$CACHE/build-base.log
echo "debootstrap into $R (log: $log)" >&2
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,udev,kmod,dbus \
  bookworm "$R" "$MIRROR" >"$log" 2>&1
mount -t proc proc "$R/proc"; mount -t sysfs sys "$R/sys"; mount --bind /dev "$R/dev"
# apt resolves what debootstrap cannot (polkitd needs a logind provider). dracut before the
# kernel, so linux-image does not pull initramfs-tools; ostree-boot carries dracut's ostree
# module (ostree-prepare-root).
chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  polkitd libpam-systemd libostree-1-1 ostree libssl3 iproute2 procps \
  dracut dracut-core ostree-boot >>"$log" 2>&1
chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  linux-image-amd64 >>"$log" 2>&1
KVER=$(ls "$R/lib/modules" | head -1)
# Drop drivers a QEMU guest never needs: smaller image, faster build and import.
M=$R/lib/modules/$KVER/kernel
rm -rf "$M/drivers/gpu" "$M/drivers/media" "$M/drivers/net/wireless" "$M/drivers/net/ethernet" \
  "$M/drivers/infiniband" "$M/drivers/staging" "$M/drivers/usb" "$M/drivers/iio" \
  "$M/drivers/bluetooth" "$M/sound" "$M/net/bluetooth" "$M/net/wireless" "$M/net/mac80211" \
  "$M/drivers/scsi" "$M/drivers/hid" "$M/drivers/input" "$M/drivers/isdn" "$M/drivers/md"
chroot "$R" depmod "$KVER"
chroot "$R" dracut --force --no-hostonly --no-early-microcode --no-compress \
  -m "base systemd systemd-initrd dracut-systemd udev-rules rootfs-block fs-lib shutdown ostree" \
  --drivers "virtio_pci virtio_blk virtio_net ext4 crc32c_generic" \
  "/usr/lib/modules/$KVER/initramfs.img" "$KVER" >>"$log" 2>&1
cp "$R/boot/vmlinuz-$KVER" "$R/usr/lib/modules/$KVER/vmlinuz"
chroot "$R" apt-get clean
umount "$R/proc" "$R/sys" "$R/dev"
# Container images carry no device nodes or API filesystems' content.
rm -rf "$R"/dev/* "$R"/proc/* "$R"/sys/* "$R"/run/* "$R"/tmp/*
rm -rf "$R"/boot/* "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/locale/* \
  "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*
tar --numeric-owner --xattrs --xattrs-include='*' -C "$R" -cf "$OUT.tmp" .
mv "$OUT.tmp" "$OUT"
rm -rf "$R"
echo "$OUT"
