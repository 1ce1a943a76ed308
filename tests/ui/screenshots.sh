#!/bin/bash
# Screenshots of the desktop app's main states, taken by the UI tests from the real app on
# the real berthd (up to date, update available, downloading, restart needed, interrupted,
# refused, the rollback and factory reset confirmations, German): PNGs in DIR
# (default ./screenshots). Root, after .ci/install-deps.
set -euo pipefail
out=$(realpath -m "${1:-screenshots}")
mkdir -p "$out"
BERTH_UI_SHOTS=$out "$(dirname "$0")/run.sh"
echo "screenshots: $out"
ls "$out"
