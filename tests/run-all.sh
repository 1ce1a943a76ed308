#!/bin/bash
# README's test command: every test Berth has, against real parts (see README.md, "The two
# commands"): formatting and lints, the unit and integration tests (real registry, ostree
# sysroots, private buses with real polkitd), then the VM end-to-end tests when this machine
# has QEMU and debootstrap (.ci/install-deps installs them). BERTH_VM_ALL=1 runs the VM's full
# power-cut matrix (tests/vm/run.sh --all) instead of one cut per phase.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
tests/run-engine-tests.sh
if command -v qemu-system-x86_64 >/dev/null && command -v debootstrap >/dev/null; then
  tests/vm/run.sh ${BERTH_VM_ALL:+--all}
else
  echo "vm: skipped (no qemu-system-x86_64 or debootstrap: run .ci/install-deps)"
fi
