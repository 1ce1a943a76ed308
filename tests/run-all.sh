#!/bin/bash
# README's test command: every test Berth has, against real parts (see tests/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
tests/run-engine-tests.sh
