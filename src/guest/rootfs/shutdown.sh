#!/bin/sh
# qemu-ga's guest-shutdown runs `/sbin/shutdown -P|-H|-r +0 <message>`; busybox has no shutdown,
# so hand over to busybox init, which runs stop.sh and then powers off, halts or reboots.
action=poweroff
for arg in "$@"; do
  case "$arg" in
    -r) action=reboot ;;
    -H) action=halt ;;
  esac
done
exec "/sbin/$action"
