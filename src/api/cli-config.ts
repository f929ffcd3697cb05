import { z } from 'zod';

/*
 * The CLI's config file: where to find the manager and which token to use. Users keep one in
 * ~/.config/silobreak/config.json; `silobreak lab up` writes LAB_CLI_CONFIG_PATH (mode 0600, it
 * holds an admin token) so the CLI works against the lab out of the box, and removes it on
 * `lab down`. Either value may be absent; flags and SILOBREAK_URL / SILOBREAK_TOKEN come first.
 */
export const CliConfigFile = z.object({
  /** Base URL of the manager, e.g. http://127.0.0.1:7100 (without /api/v1). */
  url: z.url({ protocol: /^https?$/ }).optional(),
  token: z.string().min(1).optional(),
});
export type CliConfigFile = z.infer<typeof CliConfigFile>;

export const LAB_CLI_CONFIG_PATH = '/var/lib/silobreak/cli.json';
