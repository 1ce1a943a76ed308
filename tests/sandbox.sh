# Sourced by tests/run-engine-tests.sh and tests/demo.sh, inside a private mount namespace
# (unshare -m): gives polkitd private action and rule directories holding Berth's files, a
# private /run/dbus, and test users in private copies of /etc/passwd, group and shadow.
# Nothing on the host changes: every mount vanishes with the namespace.

berth_sandbox_setup() {
  local dir=$1 repo
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  mkdir -p "$dir/polkit-actions" "$dir/polkit-rules" "$dir/run-dbus" "$dir/etc"
  cp "$repo"/polkit/*.policy "$dir/polkit-actions/"
  cp "$repo"/tests/polkit/*.rules "$dir/polkit-rules/"
  chmod 0755 "$dir/polkit-actions" "$dir/polkit-rules" "$dir/run-dbus"
  mount --bind "$dir/polkit-actions" /usr/share/polkit-1/actions
  mount --bind "$dir/polkit-rules" /etc/polkit-1/rules.d
  mount --bind "$dir/run-dbus" /run/dbus
  local hash
  hash=$(openssl passwd -6 berth-admin-pw)
  cp /etc/passwd /etc/group /etc/shadow "$dir/etc/"
  local uid=64101
  for user in berth-user berth-granted berth-admin berth-desktop; do
    if ! grep -q "^$user:" "$dir/etc/passwd"; then
      echo "$user:x:$uid:$uid:Berth test user:/nonexistent:/usr/sbin/nologin" >>"$dir/etc/passwd"
      echo "$user:x:$uid:" >>"$dir/etc/group"
      if [ "$user" = berth-admin ]; then
        echo "$user:$hash:20000:0:99999:7:::" >>"$dir/etc/shadow"
      else
        echo "$user:!:20000:0:99999:7:::" >>"$dir/etc/shadow"
      fi
    fi
    uid=$((uid + 1))
  done
  # Web console users (Cockpit's PAM login needs a home and a password): berth-operator may
  # use sudo, i.e. turn on Cockpit's administrative access; berth-viewer may not.
  local web_hash
  web_hash=$(openssl passwd -6 berth-web-pw)
  for user in berth-operator berth-viewer; do
    if ! grep -q "^$user:" "$dir/etc/passwd"; then
      mkdir -p "$dir/home/$user"
      echo "$user:x:$uid:$uid:Berth web console test user:$dir/home/$user:/bin/bash" >>"$dir/etc/passwd"
      echo "$user:x:$uid:" >>"$dir/etc/group"
      echo "$user:$web_hash:20000:0:99999:7:::" >>"$dir/etc/shadow"
      chown "$uid:$uid" "$dir/home/$user"
      chmod 0700 "$dir/home/$user"
    fi
    uid=$((uid + 1))
  done
  sed -i -E '/^sudo:/{/berth-operator/!{s/:$/:berth-operator/;t;s/$/,berth-operator/}}' "$dir/etc/group"
  for f in passwd group shadow; do
    mount --bind "$dir/etc/$f" "/etc/$f"
  done
  # A known signature policy at the default path (containers-policy.json(5)): accept
  # anything, as Debian's containers-common ships it, and no registries.d. The trust tests
  # write their own policies and name them in berth.toml. The rest of /etc/containers
  # (podman's registries.conf, storage.conf) is copied as it is.
  mkdir -p "$dir/containers"
  if [ -d /etc/containers ]; then
    cp -a /etc/containers/. "$dir/containers/"
    mount --bind "$dir/containers" /etc/containers
  fi
  printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' >"$dir/containers/policy.json"
  rm -rf "$dir/containers/registries.d"
  mkdir -p "$dir/containers/registries.d"
}
