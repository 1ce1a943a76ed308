#!/bin/bash
# Berth's D-Bus benchmark: status latency (p50/p99) under 50 concurrent clients, idle RSS and
# activation-to-ready time of a release berthd on a private bus with real polkitd, each next
# to a baseline (bus round trip, other system services, an already running berthd).
# Everything lives on a private tmpfs inside a private mount namespace. Needs root and
# .ci/install-deps. Usage: bench/run-bus.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (the benchmark mounts a private tmpfs)" >&2; exit 1; }
if [ "${1:-}" != "--inside" ]; then
  cargo build --release --locked -q -p berthd -p berth-bench
  exec unshare --mount --propagation private "$0" --inside "$@"
fi
shift
work=$(mktemp -d /tmp/berth-bench-bus.XXXXXX)
cleanup() { umount -l "$work" 2>/dev/null || true; rmdir "$work" 2>/dev/null || true; }
trap cleanup EXIT
mount -t tmpfs -o size=2g,mode=0755 berth-bench-bus "$work"
. tests/sandbox.sh
berth_sandbox_setup "$work/sandbox"
target/release/berth-bench-bus --work "$work" --berthd "${BERTHD:-target/release/berthd}" "$@"
