#!/bin/bash
# Berth's benchmark: builds a ~545 MB / 22,300-file / 5-layer OS image, serves it from a local
# docker-registry, and times Berth's pull+import+deploy (and a one-layer update) against two
# baselines, skopeo + `ostree commit --tree=tar=` + `ostree admin deploy` with one commit of all
# layers or a commit per layer and a merge commit (as ostree-ext keeps them), printing them side
# by side with peak RSS and the bytes fetched. Everything lives on a private tmpfs inside a
# private mount namespace. Needs root and .ci/install-deps. Usage: bench/run.sh [--runs N] (default 3; best of N is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (the benchmark mounts a private tmpfs)" >&2; exit 1; }
if [ "${1:-}" != "--inside" ]; then
  cargo build --release --locked -q -p berthd -p berth-bench
  exec unshare --mount --propagation private "$0" --inside "$@"
fi
shift
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
cleanup() { umount -l "$work" 2>/dev/null || true; rmdir "$work" 2>/dev/null || true; }
trap cleanup EXIT
mount -t tmpfs -o size=12g,mode=0755 berth-bench "$work"
target/release/berth-bench --work "$work" --berthd "${BERTHD:-target/release/berthd}" "$@"
