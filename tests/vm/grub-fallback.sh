#!/bin/bash
# GRUB's boot counting, as its menu script runs it before every boot on ostree systems with
# greenboot (Fedora's grub.d/08_fallback_counting and 10_reset_boot_success):
#
#   if [ -n "${boot_counter}" -a "${boot_success}" = "0" ]; then
#     if [ "${boot_counter}" = "0" -o "${boot_counter}" = "-1" ]; then
#       set default=1; set boot_counter=-1
#     else decrement boot_counter; fi
#     save_env boot_counter
#   fi
#   set boot_success=0; save_env boot_success
#
# Usage: grub-fallback.sh GRUBENV. Prints the menu entry GRUB boots (0: the default
# deployment, 1: the previous one) and rewrites GRUBENV as save_env does: the same size, the
# variables in place, new ones appended, '#' padding. The VM harness is the bootloader of the
# tests and the Rust tests of the counting rules call this same script.
set -euo pipefail
env=$1
sig='# GRUB Environment Block'
names=() values=()
# Without a block GRUB loads nothing and cannot create one: the default entry, no counting.
[ -e "$env" ] || { echo 0; exit 0; }
size=$(stat -c %s "$env")
{ IFS= read -r first; [ "$first" = "$sig" ]; } <"$env" || { echo "$env: no GRUB environment block" >&2; exit 1; }
# name=value lines; '#' lines are padding. (The counting variables never hold escaped newlines.)
while IFS= read -r line; do
  case $line in '#'*|'') continue ;; *=*) ;; *) continue ;; esac
  names+=("${line%%=*}") values+=("${line#*=}")
done < <(tail -n +2 "$env")
get() { local i; for i in "${!names[@]}"; do [ "${names[$i]}" = "$1" ] && { echo "${values[$i]}"; return; }; done; return 0; }
set_var() {
  local i
  for i in "${!names[@]}"; do [ "${names[$i]}" = "$1" ] && { values[$i]=$2; return; }; done
  names+=("$1") values+=("$2")
}

entry=0
counter=$(get boot_counter)
if [ -n "$counter" ] && [ "$(get boot_success)" = 0 ]; then
  if [ "$counter" = 0 ] || [ "$counter" = -1 ]; then
    entry=1
    set_var boot_counter -1
  else
    set_var boot_counter $((counter - 1))
  fi
fi
set_var boot_success 0

block=$sig$'\n'
for i in "${!names[@]}"; do block+="${names[$i]}=${values[$i]}"$'\n'; done
[ ${#block} -le "$size" ] || { echo "$env: the variables do not fit in $size bytes" >&2; exit 1; }
pad=$((size - ${#block}))
{ printf '%s' "$block"; head -c "$pad" /dev/zero | tr '\0' '#'; } >"$env.new"
# In place, as GRUB writes the block's sectors: the same file, the same size.
cat "$env.new" >"$env"
rm -f "$env.new"
echo "$entry"
