#!/bin/bash
# The Cockpit page's browser test alone (tests/run-engine-tests.sh runs it with everything
# else): headless Chromium logs in to a real cockpit-ws through PAM and drives the page
# against the real berthd on a private bus with real polkitd, a tmpfs sysroot and a local
# registry, in tests/in-sandbox.sh's sandbox. Root, after .ci/install-deps (Cockpit,
# Chromium, sudo, the page's npm packages). BERTH_COCKPIT_SHOTS=DIR keeps the screenshots
# (see tests/cockpit/screenshots.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --locked -p berthd -p berth -p berth-testkit
exec tests/in-sandbox.sh cargo test --locked -p berthd --test cockpit
