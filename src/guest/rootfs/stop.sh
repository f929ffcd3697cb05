#!/bin/sh
# Run by busybox init on poweroff/reboot before it kills everything: stop writers so that /data
# can be unmounted cleanly.
echo "sb-guest: stopping"
kill -TERM -1
sleep 1
sync
grep -q ' /data ' /proc/mounts && { umount /data || mount -o remount,ro /data; }
