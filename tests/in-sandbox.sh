#!/bin/bash
# Runs a command (a test run) in Berth's test sandbox: a private mount namespace with a
# private tmpfs (BERTH_TEST_TMP, for sysroots, buses and registries) and tests/sandbox.sh's
# polkit files, /run/dbus and test users. Nothing on the host's /, /boot or /run/dbus is
# touched; every mount vanishes with the namespace. Root.
#   tests/in-sandbox.sh cargo test --locked -p berthd --test cockpit
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (the tests mount a private tmpfs)" >&2; exit 1; }
if [ "${1:-}" != "--inside" ]; then
  exec unshare --mount --propagation private "$0" --inside "$@"
fi
shift
work=$(mktemp -d /tmp/berth-tests.XXXXXX)
cleanup() { umount -l "$work" 2>/dev/null || true; rmdir "$work" 2>/dev/null || true; }
trap cleanup EXIT
mount -t tmpfs -o "size=${BERTH_TEST_TMPFS_SIZE:-6g},mode=0755" berth-tests "$work"
. tests/sandbox.sh
berth_sandbox_setup "$work/sandbox"
export BERTH_TEST_TMP=$work
"$@"
