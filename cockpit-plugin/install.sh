#!/bin/bash
# Builds the Cockpit page and installs it where Cockpit looks for packages:
#   cockpit-plugin/install.sh [DESTDIR]    -> DESTDIR/usr/share/cockpit/berth
# Needs node and npm (npm ci installs the pinned toolchain from package-lock.json).
set -euo pipefail
cd "$(dirname "$0")"
dest="${1:-}/usr/share/cockpit/berth"
[ -d node_modules ] || npm ci --no-audit --no-fund
node build.mjs
rm -rf "$dest"
mkdir -p "$dest"
cp -r dist/. "$dest/"
echo "installed $dest"
