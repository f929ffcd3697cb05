import { z } from 'zod';

/*
 * The CLI's config file: where to find the manager and which token to use. Users keep one in
 * ~/.config/silobreak/config.json; `silobreak lab up` keeps LAB_CLI_CONFIG_PATH (mode 0600, it
 * holds admin tokens) so the CLI works against the labs out of the box. Like kubectl's contexts,
 * a file may hold several managers by name (`contexts`, one per lab) and the one to use
 * (`current`): `lab up` adds its lab and makes it current (and says so), `silobreak lab use <lab>`
 * switches, `--lab <lab>` (or SILOBREAK_LAB) picks one for a command, and `lab down` removes its
 * own. Flags and SILOBREAK_URL / SILOBREAK_TOKEN come first, as before.
 */

export const ManagerContext = z.object({
  /** Base URL of the manager, e.g. http://127.0.0.1:7100 (without /api/v1). */
  url: z.url({ protocol: /^https?$/ }),
  token: z.string().min(1),
});
export type ManagerContext = z.infer<typeof ManagerContext>;

/** A context's name: a lab's name (lab names follow the same rule). */
export const ContextName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'must be 1-31 lowercase letters, digits or dashes');

export const CliConfigFile = z.object({
  /** Base URL of the manager, e.g. http://127.0.0.1:7100 (without /api/v1). */
  url: z.url({ protocol: /^https?$/ }).optional(),
  token: z.string().min(1).optional(),
  /** Managers by name (the lab file: one per lab that is up). */
  contexts: z.record(ContextName, ManagerContext).optional(),
  /** The context used when a command names none; its values stand where url and token would. */
  current: ContextName.optional(),
});
export type CliConfigFile = z.infer<typeof CliConfigFile>;

export const LAB_CLI_CONFIG_PATH = '/var/lib/silobreak/cli.json';

/** The file with context `name` set to `context` and made current (what `lab up` does). */
export function addContext(
  file: CliConfigFile | undefined,
  name: string,
  context: ManagerContext,
): CliConfigFile {
  // An older lab file held one lab's url and token at the top: contexts replace them.
  return { contexts: { ...file?.contexts, [name]: context }, current: name };
}

/**
 * The file without context `name` (what `lab down` does), or undefined when none is left. When the
 * current one goes and exactly one other is left, that one becomes current; with several left,
 * none is (a command then asks which, as kubectl does with a missing current context).
 */
export function removeContext(file: CliConfigFile, name: string): CliConfigFile | undefined {
  const { [name]: _gone, ...rest } = file.contexts ?? {};
  const names = Object.keys(rest);
  if (names.length === 0) return undefined;
  const current =
    file.current !== undefined && file.current !== name
      ? file.current
      : names.length === 1
        ? names[0]
        : undefined;
  return { contexts: rest, ...(current !== undefined ? { current } : {}) };
}
