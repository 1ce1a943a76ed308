#!/bin/bash
# The desktop app's UI tests alone (tests/run-engine-tests.sh runs them with everything
# else): the real app under Xvfb against the real berthd on a private bus with real polkitd,
# a tmpfs sysroot and a local registry, in tests/in-sandbox.sh's sandbox. Root, after
# .ci/install-deps. BERTH_UI_SHOTS=DIR keeps the screenshots (see tests/ui/screenshots.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --locked -p berthd -p berth -p berth-testkit
exec tests/in-sandbox.sh cargo test --locked -p berth-gui --test ui
