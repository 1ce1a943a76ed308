#!/bin/bash
# Runs Berth's Rust tests (unit + integration) against real parts: a docker-registry on
# 127.0.0.1, ostree sysroots on a private tmpfs, private dbus-daemons with real polkitd, all
# inside a private mount namespace, so nothing touches the host's /, /boot or /run/dbus.
# Needs root (mounts) and .ci/install-deps. The sandbox is tests/in-sandbox.sh's.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (the tests mount a private tmpfs)" >&2; exit 1; }
for tool in docker-registry skopeo ostree unshare dbus-daemon busctl pkttyagent setpriv script; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run .ci/install-deps" >&2; exit 1; }
done
if [ "${1:-}" != "--inside" ]; then
  exec tests/in-sandbox.sh "$0" --inside "$@"
fi
shift
log="$BERTH_TEST_TMP/cargo-test.log"
status=0
# The bus tests run the CLI and helpers as other users: build every binary first, even when
# a filter selects a single test target.
cargo build --workspace --locked --bins 2>&1 | tee "$log" || status=$?
cargo test --workspace --locked "$@" -- --test-threads="${BERTH_TEST_THREADS:-2}" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary, the last often "0 passed").
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?/) p += $i; if ($(i+1) ~ /^failed;?/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
