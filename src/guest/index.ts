// The guest part: a small Linux guest (Debian kernel + busybox initramfs with qemu-ga and test
// workloads) for the agent to boot and the lab to migrate. See README.md.
export {
  GUEST_AGENT_PORT_NAME,
  GUEST_DATA_MOUNT,
  GUEST_READY_MARKER,
  GUEST_WORKLOADS,
  type GuestImage,
} from './constants.js';
export { checkMovedGuest, GuestKernelDied, kernelCrashLine } from './crash.js';
export { GuestBuildFailed, GuestImageMissing, GuestOptionInvalid } from './errors.js';
export { GuestNetworkOptions, guestKernelCommandLine } from './cmdline.js';
export {
  buildGuestImage,
  findGuestImage,
  guestCacheDir,
  type BuiltGuestImage,
  type GuestBuildOptions,
} from './build.js';
export { parseFioJson, type FioDirection, type FioJob, type FioLatency, type FioResult } from './fio.js';
export { registerGuestCommands } from './commands.js';
export {
  buildToolsDisk,
  findToolsDisk,
  TOOLS_VOLUME_LABEL,
  upstreamVersion,
  type ToolsManifest,
} from './tools.js';
