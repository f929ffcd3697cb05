// Where the manager's URL and token come from: flags > environment > config files.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliConfigFile, LAB_CLI_CONFIG_PATH } from '../api/index.js';
import { describeZodError } from '../api/index.js';
import { z } from 'zod';
import { UsageError } from './errors.js';

export interface Connection {
  url: string;
  token: string;
  /** Where each value came from, for messages ("--url", "SILOBREAK_TOKEN", a file path). */
  source: { url: string; token: string };
}

export interface ConfigSources {
  flags: { url?: string | undefined; token?: string | undefined };
  env: Record<string, string | undefined>;
  /** Config files in order of preference, with their parsed content (undefined when absent). */
  files: readonly { path: string; content: CliConfigFile | undefined }[];
}

/**
 * Picks each of url and token from the first place that has it: flag, then environment, then the
 * config files in order. Per value, so a token in SILOBREAK_TOKEN works with a URL from a file.
 */
export function resolveConnection(sources: ConfigSources): Connection {
  const candidates = (key: 'url' | 'token', flag: string, envName: string) => [
    { value: sources.flags[key], source: flag },
    { value: sources.env[envName], source: envName },
    ...sources.files.map((f) => ({ value: f.content?.[key], source: f.path })),
  ];
  const pick = (key: 'url' | 'token', flag: string, envName: string) =>
    candidates(key, flag, envName).find((c) => c.value !== undefined && c.value !== '');
  const url = pick('url', '--url', 'SILOBREAK_URL');
  const token = pick('token', '--token', 'SILOBREAK_TOKEN');
  const fileList = sources.files.map((f) => f.path).join(' or ');
  if (!url?.value) {
    throw new UsageError(
      'no manager URL given',
      `pass --url http://host:port, set SILOBREAK_URL, or put {"url": ...} in ${fileList}`,
    );
  }
  const parsedUrl = z.url({ protocol: /^https?$/ }).safeParse(url.value);
  if (!parsedUrl.success) {
    throw new UsageError(
      `${url.source}: '${url.value}' is not an http(s) URL`,
      'use e.g. http://127.0.0.1:7100',
    );
  }
  if (!token?.value) {
    throw new UsageError(
      'no API token given',
      `pass --token, set SILOBREAK_TOKEN, or put {"token": ...} in ${fileList}`,
    );
  }
  return { url: url.value, token: token.value, source: { url: url.source, token: token.source } };
}

/** The config files the CLI reads: $SILOBREAK_CONFIG alone if set, else the user's then the lab's. */
export function configFilePaths(env: Record<string, string | undefined>): string[] {
  if (env.SILOBREAK_CONFIG) return [env.SILOBREAK_CONFIG];
  const configHome = env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), '.config');
  return [path.join(configHome, 'silobreak', 'config.json'), LAB_CLI_CONFIG_PATH];
}

/** Reads one config file; a missing file is fine, a broken one is a usage error naming it. */
export function readConfigFile(file: string): CliConfigFile | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new UsageError(`cannot read config file ${file}: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`config file ${file} is not valid JSON`, 'fix or remove it');
  }
  const parsed = CliConfigFile.safeParse(json);
  if (!parsed.success) {
    throw new UsageError(`config file ${file}: ${describeZodError(parsed.error).detail}`, 'fix or remove it');
  }
  return parsed.data;
}
