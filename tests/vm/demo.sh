#!/bin/bash
# The VM demo: builds the test OS (as tests/vm/run.sh does), installs version 1 into a disk,
# publishes version 2 in the local registry, and boots the VM on this terminal with a root
# shell on its serial console. Try:
#     berth status; berth check; berth update; reboot
# This script is the bootloader: when the guest reboots, it boots the new default entry, so
# you see version 2 (`cat /usr/lib/berth-test-version`); `berth rollback; reboot` goes back.
# `poweroff`, then Ctrl-C at the prompt, ends the demo. Quit QEMU at any time: Ctrl-A X.
# Everything lives on a private tmpfs in a private mount namespace. Run as root after
# .ci/install-deps.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
if [ "${1:-}" != "--inside" ]; then
  cargo build --locked -q -p berthd -p berth
  exec unshare --mount --propagation private "$0" --inside "$@"
fi
W=$(mktemp -d /tmp/berth-vm-demo.XXXXXX)
mount -t tmpfs -o size=16g,mode=0755 berth-vm-demo "$W"
. tests/vm/lib.sh
trap 'vm_cleanup; umount -l "$W" 2>/dev/null; rmdir "$W" 2>/dev/null || true' EXIT
say "Building the test OS v1..v5 and a disk with v1 (a few minutes the first time)"
vm_start_registry
vm_build_images
vm_publish 1
vm_install_disk
vm_publish 2
say "Version 2 waits in the registry as $REGISTRY/berth/vm:stable. Booting v1 (Ctrl-A X quits)."
mkdir -p "$W/share"
# Room for the web console: the guest's port 9090 answers on the host's 127.0.0.1:9090.
export VM_HOSTFWD=${VM_HOSTFWD:-tcp:127.0.0.1:9090-:9090}
while true; do
  opts=$(vm_kernel "$(vm_grub)")
  (vm_qemu "$opts berth.demo" -serial mon:stdio) || true
  say "The VM stopped. Booting the entry GRUB picks again in 5 s (Ctrl-C ends the demo)."
  sleep 5
done
