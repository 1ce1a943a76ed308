#!/bin/bash
# Installs the desktop app where a distribution package puts it:
#   gui/install.sh [--destdir DIR] [--prefix /usr] [--bin target/release/berth-updates]
# The binary, the .desktop file, the AppStream metainfo, the icons (full colour and
# symbolic), and the session autostart entry that runs the app in background mode (it
# notifies when an update installed in the background needs a restart).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
destdir="" prefix=/usr bin="$here/../target/release/berth-updates" sysconfdir=/etc
while [ $# -gt 0 ]; do
  case "$1" in
    --destdir) destdir=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --sysconfdir) sysconfdir=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
root="$destdir$prefix"
install -Dm0755 "$bin" "$root/bin/berth-updates"
install -Dm0644 "$here/data/org.berth.Updates.desktop" "$root/share/applications/org.berth.Updates.desktop"
install -Dm0644 "$here/data/org.berth.Updates.metainfo.xml" "$root/share/metainfo/org.berth.Updates.metainfo.xml"
install -Dm0644 "$here/data/icons/hicolor/scalable/apps/org.berth.Updates.svg" \
  "$root/share/icons/hicolor/scalable/apps/org.berth.Updates.svg"
install -Dm0644 "$here/data/icons/hicolor/symbolic/apps/org.berth.Updates-symbolic.svg" \
  "$root/share/icons/hicolor/symbolic/apps/org.berth.Updates-symbolic.svg"
install -Dm0644 "$here/data/org.berth.Updates-autostart.desktop" \
  "$destdir$sysconfdir/xdg/autostart/org.berth.Updates-autostart.desktop"
