#!/bin/bash
# Berth's demo: a sandbox where berthd installs version 1 of a demo OS, finds version 2 in a
# local registry, updates with progress, "reboots" (emulated), and rolls back. Everything lives
# on a private tmpfs in a private mount namespace and a registry on 127.0.0.1; nothing real is
# touched, and everything is removed at the end. Run as root after .ci/install-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
if [ "${1:-}" != "--inside" ]; then
  cargo build --quiet -p berthd -p berth-testkit
  exec unshare --mount --propagation private "$0" --inside
fi
W=$(mktemp -d /tmp/berth-demo.XXXXXX)
REGPID=
cleanup() { [ -n "$REGPID" ] && kill "$REGPID" 2>/dev/null; wait 2>/dev/null; umount -l "$W" 2>/dev/null; rmdir "$W" 2>/dev/null || true; }
trap cleanup EXIT
mount -t tmpfs -o size=1g berth-demo "$W"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
printf 'version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s/registry}\nhttp: {addr: %s}\n' "$W" "$REG" > "$W/registry.yml"
docker-registry serve "$W/registry.yml" > "$W/registry.log" 2>&1 &
REGPID=$!
for _ in $(seq 100); do curl -sf "http://$REG/v2/" >/dev/null && break; sleep 0.1; done
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Building the demo OS images (versions 1, 2) and pushing version 1 as $REG/demo/os:stable"
target/debug/berth-mkimage --demo "$W/layout"
skopeo copy -q --dest-tls-verify=false "oci:$W/layout:1" "docker://$REG/demo/os:stable"
echo "insecure-registries = [\"$REG\"]" > "$W/berth.toml"
B=(target/debug/berthd --config "$W/berth.toml" --sysroot "$W/sysroot")

step "berthd install: the first deployment into an empty sysroot"
"${B[@]}" install "$REG/demo/os:stable" --stateroot demo --karg root=/dev/vda --karg rw
step "status"; "${B[@]}" status
step "check: nothing new yet"; "${B[@]}" check
step "The vendor publishes version 2 under the same tag"
skopeo copy -q --dest-tls-verify=false "oci:$W/layout:2" "docker://$REG/demo/os:stable"
step "check: an update, and only the changed layer to download"; "${B[@]}" check
step "update, with progress"; "${B[@]}" update
step "status: version 2 is staged"; "${B[@]}" status
step "reboot (emulated: the staged deployment becomes the booted one)"; "${B[@]}" reboot
step "status"; "${B[@]}" status
step "rollback, then reboot"; "${B[@]}" rollback; "${B[@]}" reboot
step "status: back on version 1"; "${B[@]}" status
echo; echo "Demo done; removing the sandbox."
