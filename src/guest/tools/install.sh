#!/bin/sh
# Silobreak guest tools installer: run inside the guest from the mounted tools disk
# (mount -t iso9660 -o ro /dev/vdX /mnt && sh /mnt/install.sh). Installs the guest agent on this
# disk only when the running one is older, then restarts it with the same arguments.
here=$(cd "$(dirname "$0")" && pwd)
offered=$(cat "$here/VERSION")
installed=$(qemu-ga -V 2>/dev/null | sed -n 's/^QEMU Guest Agent //p')
echo "installed: ${installed:-none}"
echo "offered:   $offered"

# 0 when $1 >= $2, comparing dotted numbers field by field.
at_least() {
  a=$1 b=$2
  while [ -n "$a$b" ]; do
    x=${a%%.*} y=${b%%.*}
    [ "${x:-0}" -gt "${y:-0}" ] && return 0
    [ "${x:-0}" -lt "${y:-0}" ] && return 1
    case $a in *.*) a=${a#*.} ;; *) a= ;; esac
    case $b in *.*) b=${b#*.} ;; *) b= ;; esac
  done
  return 0
}

if [ -n "$installed" ] && at_least "$installed" "$offered"; then
  echo "already current"
  exit 0
fi

# Libraries the new agent needs that this guest lacks (the guest's own stay as they are).
for lib in "$here"/lib/*; do
  [ -e "$lib" ] || continue
  dest=/lib/x86_64-linux-gnu/$(basename "$lib")
  [ -e "$dest" ] || cp "$lib" "$dest"
done
cp "$here/qemu-ga" /usr/sbin/qemu-ga.new && chmod 755 /usr/sbin/qemu-ga.new && mv /usr/sbin/qemu-ga.new /usr/sbin/qemu-ga
echo "installed $offered; the guest agent restarts now"

# The restart runs detached: this script may itself be run by the agent it replaces.
pid=$(cat /run/qemu-ga.pid 2>/dev/null)
args=
[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && args=$(tr '\0' '\n' <"/proc/$pid/cmdline" | tail -n +2 | tr '\n' ' ')
setsid sh -c "
  sleep 1
  [ -n '$pid' ] && kill '$pid' 2>/dev/null
  for i in 1 2 3 4 5 6 7 8 9 10; do [ -n '$pid' ] && [ -d /proc/$pid ] && sleep 0.2; done
  rm -f /run/qemu-ga.pid
  qemu-ga $args
" </dev/null >/run/silobreak-tools.log 2>&1 &
exit 0
