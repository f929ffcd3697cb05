/** Printed on the guest's serial console once its network, disk and qemu-ga are up. */
export const GUEST_READY_MARKER = 'SILOBREAK-GUEST-READY';

/** Name of the virtio-serial port the guest starts qemu-ga on (`virtserialport,name=...`). */
export const GUEST_AGENT_PORT_NAME = 'org.qemu.guest_agent.0';

/** Where the guest mounts its first virtio disk (/dev/vda), formatting it as ext4 when blank. */
export const GUEST_DATA_MOUNT = '/data';

/** Test workloads inside the guest (see src/guest/README.md for their options). */
export const GUEST_WORKLOADS = {
  /** `sb-dirty --rate-mib <N|0> --size-mib <M> [--seconds <S>]` */
  dirty: '/usr/bin/sb-dirty',
  /** `sb-diskwriter write --file <f> --rate-kib <N> [--count <n>] [--batch <b>]`, `... verify --file <f>` */
  diskWriter: '/usr/bin/sb-diskwriter',
  /** `sb-iobench --file <f> [--rw randread|randwrite|randrw] [--size-mib n] [--seconds s] [--bs b]`: fio-style JSON */
  ioBench: '/usr/bin/sb-iobench',
} as const;

/** Kernel and initramfs of the guest, as passed to QEMU's `-kernel` and `-initrd`. */
export interface GuestImage {
  kernel: string;
  initrd: string;
  kernelVersion: string;
}
