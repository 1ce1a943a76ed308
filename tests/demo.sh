#!/bin/bash
# Berth's demo: a sandbox holding version 1 of a demo OS, a local registry where version 2
# appears, a private system bus with real polkitd and berthd on it; then the unprivileged
# `berth` CLI walks through status -> check -> update with progress -> "reboot" -> status ->
# rollback. Everything lives on a private tmpfs in a private mount namespace (the bus socket
# too, at a private /run/dbus) with a registry on 127.0.0.1; nothing real is touched, and all
# of it is removed at the end. Run as root after .ci/install-deps.
#
# tests/demo.sh --app: the same sandbox, then the desktop app (System Updates) on your screen
# ($DISPLAY or $WAYLAND_DISPLAY) against the demo's berthd, with version 2 waiting; close the
# window to end the demo. Without a screen, tests/ui/screenshots.sh shows the app instead.
#
# tests/demo.sh --cockpit: the same sandbox, then the web console (Cockpit) with the "Image
# updates" page on http://127.0.0.1:9090 (BERTH_DEMO_PORT to change it; loopback only),
# version 2 waiting. Log in as berth-operator (may use sudo: turn on administrative access
# with the same password) or berth-viewer, password berth-web-pw. Ctrl-C ends the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
if [ "${1:-}" != "--inside" ]; then
  app="" cockpit=""
  if [ "${1:-}" = "--cockpit" ]; then
    cockpit=1
    [ -x /usr/lib/cockpit/cockpit-ws ] || { echo "--cockpit needs Cockpit: run .ci/install-deps" >&2; exit 2; }
    echo "Building the Cockpit page (cockpit-plugin/, esbuild)."
    [ -d cockpit-plugin/node_modules ] || (cd cockpit-plugin && npm ci --no-audit --no-fund)
    node cockpit-plugin/build.mjs
  fi
  if [ "${1:-}" = "--app" ]; then
    app=1
    if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
      echo "--app needs a screen (DISPLAY or WAYLAND_DISPLAY); tests/ui/screenshots.sh runs the app under Xvfb and saves screenshots" >&2
      exit 2
    fi
  fi
  if [ ! -x target/debug/berthd ]; then
    echo "Building Berth (debug). The first build compiles a few hundred crates and takes several minutes on 2 cores; later runs start at once."
  fi
  # cargo names each crate as it compiles it, so the first build shows it is moving.
  cargo build --locked -p berthd -p berth -p berth-testkit ${app:+-p berth-gui}
  BERTH_DEMO_APP=$app BERTH_DEMO_COCKPIT=$cockpit exec unshare --mount --propagation private "$0" --inside
fi
W=$(mktemp -d /tmp/berth-demo.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  umount -l "$W" 2>/dev/null || true; rmdir "$W" 2>/dev/null || true
}
trap cleanup EXIT
mount -t tmpfs -o size=1g berth-demo "$W"
. tests/sandbox.sh
berth_sandbox_setup "$W/sandbox"   # polkit files, test users, a private /run/dbus
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
printf 'version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s/registry}\nhttp: {addr: %s}\n' "$W" "$REG" > "$W/registry.yml"
docker-registry serve "$W/registry.yml" > "$W/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://$REG/v2/" >/dev/null && break; sleep 0.1; done
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
as_user() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups "$@"; }
BERTH=$PWD/target/debug/berth

step "Building the demo OS (versions 1 and 2); the registry serves version 1 as $REG/demo/os:stable"
target/debug/berth-mkimage --demo "$W/layout"
skopeo copy -q --dest-tls-verify=false "oci:$W/layout:1" "docker://$REG/demo/os:stable"
# The demo images are unsigned: its signature policy accepts them (a real system names its
# keys in /etc/containers/policy.json; README's "Trusted updates" shows how).
echo '{"default": [{"type": "insecureAcceptAnything"}]}' > "$W/policy.json"
printf 'insecure-registries = ["%s"]\nsignature-policy = "%s"\n' "$REG" "$W/policy.json" > "$W/berth.toml"
target/debug/berthd --config "$W/berth.toml" --sysroot "$W/sysroot" \
  install "$REG/demo/os:stable" --stateroot demo --karg root=/dev/vda --karg rw >/dev/null
echo "installed version 1 into $W/sysroot"

step "A private system bus with real polkitd, and berthd serving the sysroot on it"
coproc BUS { exec target/debug/berth-bus "$W/bus" --socket /run/dbus/system_bus_socket; }
PIDS+=($BUS_PID)
read -r ADDRESS <&"${BUS[0]}"
echo "bus: $ADDRESS"
BERTH_LOG=info target/debug/berthd --config "$W/berth.toml" --sysroot "$W/sysroot" \
  serve --idle-timeout 0 2> "$W/berthd.log" &
PIDS+=($!)
for _ in $(seq 200); do busctl status org.berth.Berth1 >/dev/null 2>&1 && break; sleep 0.05; done
busctl status org.berth.Berth1 >/dev/null || { cat "$W/berthd.log"; exit 1; }

if [ -n "${BERTH_DEMO_COCKPIT:-}" ]; then
  skopeo copy -q --dest-tls-verify=false "oci:$W/layout:2" "docker://$REG/demo/os:stable"
  step "Version 2 is published. Starting the web console with the Image updates page"
  for user in berth-operator berth-viewer; do
    home=$(getent passwd "$user" | cut -d: -f6)
    mkdir -p "$home/.local/share/cockpit"
    cp -r cockpit-plugin/dist "$home/.local/share/cockpit/berth"
    # A session bus, as a real login's user manager gives (Cockpit's Services page opens it);
    # the login's PAM stack reads its address from ~/.pam_environment.
    echo "DBUS_SESSION_BUS_ADDRESS DEFAULT=unix:path=$home/.session-bus" > "$home/.pam_environment"
    chown -R "$user:" "$home/.local" "$home/.pam_environment"
    as_user "$user" dbus-daemon --session --nofork --nopidfile --address="unix:path=$home/.session-bus" \
      > "$W/session-bus-$user.log" 2>&1 &
    PIDS+=($!)
  done
  mkdir -p "$W/cockpit-config/cockpit"
  # No TLS on loopback; no systemd socket for sessions, so ws starts cockpit-session itself.
  printf '[WebService]\nAllowUnencrypted = true\nLoginTitle = Berth demo\n\n[basic]\nCommand = /usr/lib/cockpit/cockpit-session\n' \
    > "$W/cockpit-config/cockpit/cockpit.conf"
  WEB_PORT=${BERTH_DEMO_PORT:-9090}
  XDG_CONFIG_DIRS=$W/cockpit-config /usr/lib/cockpit/cockpit-ws --no-tls --address=127.0.0.1 \
    --port="$WEB_PORT" > "$W/cockpit-ws.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$WEB_PORT/" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$WEB_PORT/" || { cat "$W/cockpit-ws.log"; exit 1; }
  step "Open http://127.0.0.1:$WEB_PORT/berth and log in"
  echo "  berth-operator / berth-web-pw: turn on administrative access (same password) to act"
  echo "  berth-viewer   / berth-web-pw: sees the state, cannot change it"
  echo "  Restart is emulated: the staged version becomes the running one. Ctrl-C ends the demo."
  wait "${PIDS[-1]}" || true
  exit 0
fi

if [ -n "${BERTH_DEMO_APP:-}" ]; then
  skopeo copy -q --dest-tls-verify=false "oci:$W/layout:2" "docker://$REG/demo/os:stable"
  step "Version 2 is published. The desktop app opens on your screen (close it to end the demo)"
  # As root: the sandbox's users are unknown to your display server. polkit lets root do
  # everything, so the app's buttons all work; try Update and Restart, Roll Back, Factory Reset.
  DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/dbus/system_bus_socket target/debug/berth-updates || true
  echo; echo "Demo done; removing the sandbox."
  exit 0
fi

step "berth status (as berth-granted, a local user a polkit rule trusts with routine updates)"
as_user berth-granted "$BERTH" status
step "berth check: nothing new yet"
as_user berth-granted "$BERTH" check || true
step "The vendor publishes version 2 under the same tag"
skopeo copy -q --dest-tls-verify=false "oci:$W/layout:2" "docker://$REG/demo/os:stable"
step "berth check: an update (exit code 100), and only the changed layer to download"
as_user berth-granted "$BERTH" check || [ $? = 100 ]
step "berth update, with progress"
as_user berth-granted "$BERTH" update
step "berth status: version 2 is staged"
as_user berth-granted "$BERTH" status
step "berth rollback as a user without that rule: polkit says no"
as_user berth-user "$BERTH" --no-ask-password rollback || echo "(exit code $?)"
step "berth reboot (emulated: the staged deployment becomes the booted one)"
as_user berth-granted "$BERTH" reboot
as_user berth-granted "$BERTH" status
step "berth rollback as root (an administrator's decision), then reboot"
"$BERTH" rollback
"$BERTH" reboot
step "berth status: back on version 1"
"$BERTH" status
echo; echo "Demo done; removing the sandbox."
