// The guest kernel as QEMU boots it fastest. Debian's bzImage holds an xz-compressed kernel
// that the guest must decompress before it starts: under TCG that alone took 5-25 s here. Debian
// builds with CONFIG_PVH, so QEMU can instead load the uncompressed ELF (vmlinux) with
// `-kernel` and enter it directly (PVH boot), which starts the kernel within 2-3 s.
import { runWithInput } from './host.js';

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

/** True when the kernel's config (boot/config-<version>) enables the PVH entry point. */
export function kernelSupportsPvh(config: string): boolean {
  return /^CONFIG_PVH=y$/m.test(config);
}

/** Offset of the xz stream inside a bzImage, or -1 when the payload is not xz. */
export function xzPayloadOffset(bzImage: Buffer): number {
  // The setup header (bytes 0x202..0x205) says "HdrS" in every bzImage.
  if (bzImage.length < 0x300 || bzImage.toString('latin1', 0x202, 0x206) !== 'HdrS') return -1;
  return bzImage.indexOf(XZ_MAGIC);
}

/** The uncompressed vmlinux (ELF) inside a bzImage, or undefined if it cannot be had. */
export async function extractVmlinux(bzImage: Buffer): Promise<Buffer | undefined> {
  const offset = xzPayloadOffset(bzImage);
  if (offset < 0) return undefined;
  // --single-stream: the bzImage continues after the xz stream (size field, padding).
  const elf = await runWithInput(
    'extracting vmlinux',
    'xz',
    ['-dc', '--single-stream'],
    bzImage.subarray(offset),
  );
  return elf.readUInt32BE(0) === 0x7f454c46 ? elf : undefined;
}
