/** No usable guest image in the cache: the fix is always to build one. */
export class GuestImageMissing extends Error {
  readonly code = 'GUEST_IMAGE_MISSING';
  readonly cacheDir: string;
  constructor(cacheDir: string, reason: string) {
    super(`no guest image in ${cacheDir} (${reason}): run \`silobreak guest build\``);
    this.name = 'GuestImageMissing';
    this.cacheDir = cacheDir;
  }
}

/** A step of building the guest image failed; `step` says which, the message says why. */
export class GuestBuildFailed extends Error {
  readonly code = 'GUEST_BUILD_FAILED';
  readonly step: string;
  constructor(step: string, detail: string) {
    super(`guest build failed while ${step}: ${detail}`);
    this.name = 'GuestBuildFailed';
    this.step = step;
  }
}

/** An option for the guest (kernel command line) breaks a rule; nothing was changed. */
export class GuestOptionInvalid extends Error {
  readonly code = 'GUEST_OPTION_INVALID';
  readonly field: string;
  constructor(field: string, rule: string) {
    super(`${field}: ${rule}`);
    this.name = 'GuestOptionInvalid';
    this.field = field;
  }
}
