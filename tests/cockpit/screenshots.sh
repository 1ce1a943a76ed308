#!/bin/bash
# Screenshots of the Cockpit page's main states, taken by its browser test in the real
# web console on the real berthd (limited access, up to date, update available, downloading,
# restart needed, an explained error, an invalid image refused, berthd unreachable, the
# rollback and factory reset confirmations, German): PNGs in DIR (default
# ./cockpit-screenshots). Root, after .ci/install-deps.
set -euo pipefail
out=$(realpath -m "${1:-cockpit-screenshots}")
mkdir -p "$out"
BERTH_COCKPIT_SHOTS=$out "$(dirname "$0")/run.sh"
echo "screenshots: $out"
ls "$out"
