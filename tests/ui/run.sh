#!/bin/bash
# The desktop app's UI tests alone (tests/run-engine-tests.sh runs them with everything
# else): the real app under Xvfb against the real berthd on a private bus with real polkitd,
# a tmpfs sysroot and a local registry, in a private mount namespace. Root, after
# .ci/install-deps. BERTH_UI_SHOTS=DIR keeps the screenshots (see tests/ui/screenshots.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root (the tests mount a private tmpfs)" >&2; exit 1; }
if [ "${1:-}" != "--inside" ]; then
  cargo build --locked -p berthd -p berth -p berth-testkit
  exec unshare --mount --propagation private "$0" --inside
fi
work=$(mktemp -d /tmp/berth-ui.XXXXXX)
cleanup() { umount -l "$work" 2>/dev/null || true; rmdir "$work" 2>/dev/null || true; }
trap cleanup EXIT
mount -t tmpfs -o size=2g,mode=0755 berth-ui "$work"
. tests/sandbox.sh
berth_sandbox_setup "$work/sandbox"
export BERTH_TEST_TMP=$work
cargo test --locked -p berth-gui --test ui
