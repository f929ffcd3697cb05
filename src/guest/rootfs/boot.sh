#!/bin/sh
# Boot of the Silobreak test guest, run once by busybox init. Reads sb.ip=, sb.gw= and
# sb.hostname= from the kernel command line, loads the modules listed at build time, brings up
# the network, the disk (/dev/vda at /data, formatted on first boot) and qemu-ga, then prints the
# ready marker on the console that the host waits for.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "sb-guest: $*"; }

mount -t proc proc /proc
init_started=$(cut -d' ' -f1 /proc/uptime)
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp

# The list is in dependency order (resolved from each module's depends= when the image was built).
while read -r mod; do
  insmod "/lib/modules/$mod.ko" || say "cannot load module $mod"
done </lib/modules/load-order

# Only a blank disk (first 64 KiB all zero, as a new qcow2 reads) gets formatted: anything else on
# it is left alone. mke2fs needs random bytes, and without RDRAND (-cpu Nehalem) or a virtio-rng
# device the kernel's RNG is not ready this early: libuuid then sleeps and retries for seconds.
# Reading /dev/random makes the kernel gather jitter entropy, here in the background while the
# network comes up (only when formatting: it costs the single vCPU a second or two).
blank_disk=no
if [ -b /dev/vda ] && [ "$(dd if=/dev/vda bs=65536 count=1 2>/dev/null | tr -d '\000' | wc -c)" -eq 0 ]; then
  blank_disk=yes
  head -c 1 /dev/random >/dev/null &
  rng_ready=$!
fi

ip_cidr=
gateway=
name=silobreak-guest
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    sb.ip=*) ip_cidr=${arg#sb.ip=} ;;
    sb.gw=*) gateway=${arg#sb.gw=} ;;
    sb.hostname=*) name=${arg#sb.hostname=} ;;
  esac
done
hostname "$name"
echo "$name" >/etc/hostname
echo "127.0.0.1 localhost $name" >/etc/hosts

ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  if [ -n "$ip_cidr" ]; then
    ip addr add "$ip_cidr" dev eth0 || say "cannot set address $ip_cidr on eth0"
    [ -n "$gateway" ] && { ip route add default via "$gateway" || say "cannot add route via $gateway"; }
    # Gratuitous ARP so switches and neighbours learn where this address lives now.
    arping -U -c 2 -w 3 -I eth0 "${ip_cidr%/*}" >/dev/null 2>&1 &
  fi
else
  say "no eth0"
fi

if [ -b /dev/vda ]; then
  if [ $blank_disk = yes ]; then
    say "formatting blank /dev/vda as ext4"
    wait $rng_ready
    mkfs.ext4 -q -F -L sbdata -E lazy_itable_init=1,lazy_journal_init=1 /dev/vda || say "cannot format /dev/vda"
  fi
  mkdir -p /data
  mount -t ext4 /dev/vda /data || say "cannot mount /dev/vda"
fi

# No udev here: find the agent's virtio-serial port by its name in sysfs.
# Ports appear shortly after the virtio-serial device is probed; without one, don't wait.
port=
tries=0
ls -d /sys/bus/virtio/drivers/virtio_console/virtio* >/dev/null 2>&1 || tries=50
while [ -z "$port" ] && [ $tries -lt 50 ]; do
  for dir in /sys/class/virtio-ports/*; do
    [ "$(cat "$dir/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] && port=/dev/${dir##*/}
  done
  [ -n "$port" ] || { tries=$((tries + 1)); sleep 0.1; }
done
qga=no
if [ -n "$port" ]; then
  qemu-ga -m virtio-serial -p "$port" -d -t /run -f /run/qemu-ga.pid -l /run/qemu-ga.log
  tries=0
  while [ ! -s /run/qemu-ga.pid ] && [ $tries -lt 50 ]; do tries=$((tries + 1)); sleep 0.1; done
  [ -s /run/qemu-ga.pid ] && qga=yes || say "qemu-ga did not start (see /run/qemu-ga.log)"
else
  say "no virtio-serial port named org.qemu.guest_agent.0"
fi

# The power button (ACPI, via the button + evdev modules) runs /etc/acpi/PWRF/00000080.
acpid -c /etc/acpi -l /run/acpid.log

addr=$(ip -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}')
data=no
grep -q ' /data ' /proc/mounts && data=yes
echo "SILOBREAK-GUEST-READY hostname=$name ip=${addr:-none} qga=$qga data=$data init=$init_started uptime=$(cut -d' ' -f1 /proc/uptime)"
