# Berth's VM harness, sourced by tests/vm/run.sh and tests/vm/demo.sh. Runs inside a private
# mount namespace on a private tmpfs ($W). Builds the test OS images v1..v5 with podman from
# the cached base, pushes them to a docker-registry on 127.0.0.1, installs v1 into a disk
# image with berthd, and boots it under QEMU (TCG) acting as the bootloader: it reads the BLS
# entries from the powered-off disk with debugfs and boots the chosen one.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${W:?W (the work directory) must be set}"
PIDS=()
BIN=${BERTH_BIN:-$REPO/target/debug}
VM_MEM=${VM_MEM:-1536}
VM_TIMEOUT=${VM_TIMEOUT:-300}

vm_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

# The registry, reachable as registry.berth.test:$PORT from the host (a private /etc/hosts in
# this namespace) and from the guest (its /etc/hosts points the name at QEMU's 10.0.2.2).
vm_start_registry() {
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  REGISTRY=registry.berth.test:$PORT
  { cat /etc/hosts; printf '127.0.0.1\tregistry.berth.test\n'; } > "$W/hosts"
  mount --bind "$W/hosts" /etc/hosts
  printf 'version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s/registry}\nhttp: {addr: 127.0.0.1:%s}\n' "$W" "$PORT" > "$W/registry.yml"
  docker-registry serve "$W/registry.yml" > "$W/registry.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://$REGISTRY/v2/" >/dev/null && return 0; sleep 0.1; done
  echo "registry did not start" >&2; return 1
}

PODMAN=(podman --root "$W/containers" --runroot "$W/containers-run" --storage-driver=vfs)

# vm_build_images: v1, v2, v3 (a service that fails at boot), v4 (a 48 MB layer) and v5 (a
# service that never finishes starting).
vm_build_images() {
  local base ctx=$W/ctx
  base=$("$REPO/tests/vm/build-base.sh")
  mkdir -p "$ctx"
  ln -f "$base" "$ctx/base.tar" 2>/dev/null || cp "$base" "$ctx/base.tar"
  # Berth's files where a package installs them, as one tree: one image layer (podman's vfs
  # storage keeps a full copy of the root filesystem per layer). Binaries without debug info.
  local pkg=$ctx/pkg unit=$ctx/pkg/usr/lib/systemd/system f
  mkdir -p "$pkg/usr/libexec" "$pkg/usr/bin" "$pkg/usr/share/dbus-1/system.d" \
    "$pkg/usr/share/dbus-1/system-services" "$unit/boot-complete.target.d" \
    "$pkg/usr/share/polkit-1/actions" "$pkg/usr/lib/tmpfiles.d"
  strip -o "$pkg/usr/libexec/berthd" "$BIN/berthd"
  strip -o "$pkg/usr/bin/berth" "$BIN/berth"
  cp "$REPO/dbus/org.berth.Berth1.conf" "$pkg/usr/share/dbus-1/system.d/"
  cp "$REPO/dbus/org.berth.Berth1.service" "$pkg/usr/share/dbus-1/system-services/"
  for f in berthd berth-finalize-staged berth-boot-assess \
           berth-health-check berth-boot-good berth-boot-failed berth-unlock-transient \
           berth-unlock-hotfix berth-hotfix; do
    cp "$REPO/dbus/$f.service" "$unit/"
  done
  cp "$REPO/dbus/berth-boot-complete.conf" "$unit/boot-complete.target.d/50-berth.conf"
  cp "$REPO/polkit/org.berth.berth1.policy" "$pkg/usr/share/polkit-1/actions/"
  cp "$REPO/dbus/berth.tmpfiles.conf" "$pkg/usr/lib/tmpfiles.d/berth.conf"
  cp -a "$REPO/tests/vm/guest" "$ctx/guest"
  local v broken big hang
  for v in 1 2 3 4 5; do
    broken=0; [ "$v" = 3 ] && broken=1
    big=0; [ "$v" = 4 ] && big=1
    hang=0; [ "$v" = 5 ] && hang=1
    say "podman build: the test OS, version $v"
    "${PODMAN[@]}" build -q --isolation=chroot --build-arg "REGISTRY=$REGISTRY" \
      --build-arg "VERSION=$v" --build-arg "BROKEN=$broken" --build-arg "BIG=$big" \
      --build-arg "HANG=$hang" \
      -t "berth-vm:$v" -f "$REPO/tests/vm/Containerfile" "$ctx" >"$W/build-$v.log" 2>&1 \
      || { tail -30 "$W/build-$v.log" >&2; return 1; }
    "${PODMAN[@]}" push -q --tls-verify=false "berth-vm:$v" "docker://$REGISTRY/berth/vm:$v" \
      >>"$W/build-$v.log" 2>&1 || { tail -30 "$W/build-$v.log" >&2; return 1; }
  done
  # The registry has them now; podman's vfs copies would only hold memory on the tmpfs.
  rm -rf "$W/containers" "$W/containers-run" "$ctx" 2>/dev/null || true
}

# vm_publish VERSION: the image the machines follow (":stable") becomes VERSION.
vm_publish() {
  skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
    "docker://$REGISTRY/berth/vm:$1" "docker://$REGISTRY/berth/vm:stable"
}

# vm_install_disk: berthd installs :stable into a sysroot directory, packed as an ext4 disk.
vm_install_disk() {
  # The host's berthd only installs the first image: a policy that accepts it, named here.
  printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' > "$W/host-policy.json"
  printf 'insecure-registries = ["%s"]\nsignature-policy = "%s"\n' "$REGISTRY" "$W/host-policy.json" \
    > "$W/host-berth.toml"
  # Deployments stay mutable on the host's tmpfs (ostree would chattr +i them); the guest's
  # own ostree protects the ones it writes.
  OSTREE_SYSROOT_DEBUG=mutable-deployments \
  "$BIN/berthd" --config "$W/host-berth.toml" --sysroot "$W/sysroot" install \
    "$REGISTRY/berth/vm:stable" --stateroot berth \
    --karg root=/dev/vda --karg rw --karg console=ttyS0 --karg quiet >"$W/install.log" 2>&1 \
    || { cat "$W/install.log" >&2; return 1; }
  # What installing GRUB leaves (grub-install, grub-editenv create): an empty environment
  # block, where Berth's boot counting keeps its counters.
  mkdir -p "$W/sysroot/boot/grub"
  { printf '# GRUB Environment Block\n'; head -c 999 /dev/zero | tr '\0' '#'; } > "$W/sysroot/boot/grub/grubenv"
  mkfs.ext4 -q -F -L root -d "$W/sysroot" "$W/disk.img" 6G
}

# bootloader_read 'debugfs command': reads the powered-off disk as a bootloader does: without
# replaying the journal (debugfs never does) and without the allocation bitmaps (-c), which a
# power cut can leave out of step with their checksums in the group descriptors until the
# kernel replays the journal; GRUB never reads them either.
bootloader_read() { debugfs -c -R "$1" "$(vm_disk)" 2>/dev/null; }

# The disk the next boot uses: $W/disk.img, or $VM_DISK (a replay of lost writes).
vm_disk() { echo "${VM_DISK:-$W/disk.img}"; }

# vm_entries: "version path" of each BLS entry on the disk, highest version (the default) first.
vm_entries() {
  local loader e dir=$W/bls
  rm -rf "$dir"; mkdir -p "$dir"
  loader=$(bootloader_read 'stat /boot/loader' | sed -n 's/^Fast link dest: "\(.*\)"/\1/p')
  for e in $(bootloader_read "ls -p /boot/$loader/entries" | awk -F/ '$6 ~ /\.conf$/ {print $6}'); do
    bootloader_read "cat /boot/$loader/entries/$e" > "$dir/$e"
  done
  for f in "$dir"/*.conf; do echo "$(awk '$1=="version"{print $2}' "$f") $f"; done | sort -rn
}

GRUBENV=/boot/grub/grubenv
# vm_grub: GRUB's menu script on the powered-off disk (tests/vm/grub-fallback.sh, the boot
# counting rules): reads the environment block as GRUB does, applies the rules, writes the
# block back in place (GRUB's save_env rewrites the file's own sectors), and prints the menu
# entry to boot: 0, the default deployment, or 1, the previous one.
vm_grub() {
  local env=$W/grubenv block
  rm -f "$env"
  bootloader_read "dump $GRUBENV $env" >/dev/null
  if [ ! -s "$env" ]; then echo 0; return; fi
  bash "$REPO/tests/vm/grub-fallback.sh" "$env"
  block=$(bootloader_read "bmap $GRUBENV 0")
  [ -n "$block" ] || { echo "no block for $GRUBENV" >&2; return 1; }
  dd if="$env" of="$(vm_disk)" bs=4096 seek="$block" conv=notrunc status=none
}

# vm_kernel [default|rollback|ENTRY]: extracts the chosen entry's kernel (as an uncompressed ELF:
# TCG then skips the slow in-guest xz unpack) and initrd into $W/bls; prints its options.
vm_kernel() {
  local which=${1:-default} pick dir=$W/bls
  case $which in rollback) which=1 ;; default) which=0 ;; esac
  pick=$(vm_entries | sed -n "$((which + 1))p" | cut -d' ' -f2)
  [ -n "$pick" ] || {
    echo "no boot entry on the disk:" >&2
    debugfs -c -R 'stat /boot/loader' "$(vm_disk)" 2>&1 | head -20 >&2
    return 1
  }
  local linux initrd
  linux=$(awk '$1=="linux"{print $2}' "$pick"); initrd=$(awk '$1=="initrd"{print $2}' "$pick")
  bootloader_read "dump /boot$linux $dir/vmlinuz"
  bootloader_read "dump /boot$initrd $dir/initrd"
  python3 - "$dir/vmlinuz" "$dir/vmlinux" <<'EOP'
import lzma, sys
d = open(sys.argv[1], 'rb').read(); i = d.find(b'\xfd7zXZ\x00')
open(sys.argv[2], 'wb').write(lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(d[i:]))
EOP
  sed -n 's/^options //p' "$pick"
}

# The QEMU command line shared by the tests and the demo (TCG: this machine's KVM cannot run
# stock kernels), with the kernel and initrd vm_kernel extracted. It execs: run it in a
# subshell, whose PID is then QEMU's. cache=unsafe: a QEMU killed with -9 (a power cut)
# still leaves every write the guest made in the image, flushed or not. With VM_LOG_WRITES
# set, QEMU's blklogwrites driver also records each write and flush, in order, in
# $W/writes.log, and the guest's flushes are honoured (cache=writeback): vm_replays then
# builds the disks a power cut that lost the unflushed writes would have left.
vm_qemu() {
  local opts=$1 drive; shift
  drive="file=$(vm_disk),format=raw,if=virtio,cache=unsafe"
  if [ -n "${VM_LOG_WRITES:-}" ]; then
    drive="driver=blklogwrites,file.driver=file,file.filename=$(vm_disk),log.driver=file"
    drive+=",log.filename=$W/writes.log,log-sector-size=512,log-append=off,if=virtio,cache=writeback"
  fi
  exec qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m "$VM_MEM" \
    -nographic -no-reboot \
    -kernel "$W/bls/vmlinux" -initrd "$W/bls/initrd" -append "$opts" \
    -drive "$drive" \
    -netdev "user,id=n0${VM_HOSTFWD:+,hostfwd=$VM_HOSTFWD}" -device virtio-net-pci,netdev=n0 \
    -virtfs "local,path=$W/share,mount_tag=test,security_model=none,readonly=on" "$@"
}

# vm_boot LOG [default|rollback] [KILL_AFTER_MARKER KILL_DELAY]: boots the BLS entry GRUB's
# boot counting picks (vm_grub; or the rollback one; kernel arguments plus $VM_EXTRA_KARGS)
# with /work step.sh shared over 9p, and records GRUB's choice and counters in LOG.grub;
# returns when the guest powers off, or kills QEMU (a power cut) KILL_DELAY seconds after
# KILL_AFTER_MARKER appears on the serial console, and then records "cut at MARKER" in LOG.cut.
vm_boot() {
  local log=$1 which=${2:-default} kill_marker=${3:-} kill_delay=${4:-0}
  local opts entry
  if [ "$which" = default ]; then
    entry=$(vm_grub) || return 1
    echo "entry=$entry $(grep -ao 'boot_[a-z]*=[-0-9]*' "$W/grubenv" 2>/dev/null | tr '\n' ' ')" > "$log.grub"
    which=$entry
  fi
  opts="$(vm_kernel "$which")${VM_EXTRA_KARGS:+ $VM_EXTRA_KARGS}"
  mkdir -p "$W/share"
  if [ -n "${VM_LOG_WRITES:-}" ]; then
    # The disk as the log begins: the replays start from it.
    cp --sparse=always "$(vm_disk)" "$W/disk.base"; : > "$W/writes.log"
  fi
  : > "$log"; rm -f "$log.cut"
  (vm_qemu "$opts" -monitor none -serial "file:$log" </dev/null >/dev/null 2>&1) &
  local qemu=$! start=$SECONDS stalled=
  PIDS+=($qemu)
  while kill -0 "$qemu" 2>/dev/null; do
    # Under TCG the guest kernel now and then stalls for good before anything of the system
    # under test runs (RCU stall reports, no systemd line, no agent): an emulation fault, not
    # a finding. Such a boot is killed and booted once more; the first log is kept.
    if [ -z "$kill_marker" ] && [ -z "${VM_RETRIED:-}" ] &&
       grep -aq 'rcu_[a-z]* detected stalls' "$log" && ! grep -aq 'systemd\[1\]\|BERTH-' "$log"; then
      kill -9 "$qemu" 2>/dev/null; stalled=1; break
    fi
    if [ -n "$kill_marker" ] && grep -aq -- "$kill_marker" "$log"; then
      sleep "$kill_delay"
      if kill -9 "$qemu" 2>/dev/null; then
        echo "cut at $kill_marker +${kill_delay}s" > "$log.cut"
        echo "power cut ${kill_delay}s after '$kill_marker'" >&2
      fi
      break
    fi
    if [ $((SECONDS - start)) -gt "$VM_TIMEOUT" ]; then
      kill -9 "$qemu" 2>/dev/null; echo "VM timed out after ${VM_TIMEOUT}s" >&2; break
    fi
    sleep 0.1
  done
  wait "$qemu" 2>/dev/null || true
  if [ -n "$stalled" ]; then
    cp "$log" "$log.stalled"
    echo "the guest kernel stalled under TCG before userspace (see $log.stalled); booting again, once" >&2
    VM_RETRIED=1 vm_boot "$@"
  fi
}

# vm_replay_points: how many entries of the last logged boot's writes to replay: up to its
# last flush (a power cut that lost every write after it), and halfway from there to the end
# (it lost some, the later ones). Nothing when no write followed the last flush.
vm_replay_points() {
  local total last
  total=$(python3 "$REPO/tests/vm/replay-log.py" "$W/writes.log" count)
  last=$(python3 "$REPO/tests/vm/replay-log.py" "$W/writes.log" flushes | tail -1)
  last=${last:-0}
  [ "$total" -gt "$last" ] || return 0
  echo "$last"
  if [ $((total - last)) -gt 1 ]; then echo $((last + (total - last) / 2)); fi
}

# vm_replay N: $W/disk.replay, the disk as the logged boot began with the log's first N
# entries written to it.
vm_replay() {
  cp --sparse=always "$W/disk.base" "$W/disk.replay"
  python3 "$REPO/tests/vm/replay-log.py" "$W/writes.log" replay "$W/disk.replay" "$1"
}

# vm_step 'shell commands': what the guest agent runs at the next boot.
vm_step() { mkdir -p "$W/share"; printf '%s\n' "$1" > "$W/share/step.sh"; }

# vm_guest_file PATH: a file from the powered-off disk (the guest's /var is
# /ostree/deploy/berth/var on disk).
vm_guest_file() { bootloader_read "cat $1"; }
