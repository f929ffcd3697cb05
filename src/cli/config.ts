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
  /**
   * Said on stderr before the command runs: which lab's manager a plain command talks to while more
   * than one lab is up (`--lab` picks another).
   */
  notice?: string;
}

export interface ConfigSources {
  flags: { url?: string | undefined; token?: string | undefined; lab?: string | undefined };
  env: Record<string, string | undefined>;
  /** Config files in order of preference, with their parsed content (undefined when absent). */
  files: readonly { path: string; content: CliConfigFile | undefined }[];
}

interface Candidate {
  value: string | undefined;
  source: string;
}

/** The context `--lab` (or SILOBREAK_LAB) names, from the first file that has it. */
function chosenLab(sources: ConfigSources): { url: Candidate; token: Candidate } | undefined {
  const flag = sources.flags.lab ? '--lab' : 'SILOBREAK_LAB';
  const lab = sources.flags.lab || sources.env.SILOBREAK_LAB;
  if (!lab) return undefined;
  for (const f of sources.files) {
    const context = f.content?.contexts?.[lab];
    if (context) {
      const source = `${flag} ${lab} (${f.path})`;
      return { url: { value: context.url, source }, token: { value: context.token, source } };
    }
  }
  const known = sources.files.flatMap((f) => Object.keys(f.content?.contexts ?? {}));
  throw new UsageError(
    `${flag}: no lab '${lab}' in ${sources.files.map((f) => f.path).join(' or ')}`,
    known.length ? `labs up: ${[...new Set(known)].sort().join(', ')}` : 'no lab is up: silobreak lab up',
  );
}

/** A file's own values: its url and token, or those of its current context. */
function fileValues(f: ConfigSources['files'][number]): { url?: string; token?: string; lab?: string } {
  const c = f.content;
  if (!c) return {};
  const current = c.current !== undefined ? c.contexts?.[c.current] : undefined;
  return {
    ...((c.url ?? current?.url) ? { url: c.url ?? current?.url } : {}),
    ...((c.token ?? current?.token) ? { token: c.token ?? current?.token } : {}),
    ...(current && c.url === undefined ? { lab: c.current } : {}),
  };
}

/**
 * Picks each of url and token from the first place that has it: flag, then the lab `--lab` or
 * SILOBREAK_LAB names, then environment, then the config files in order (a file's url and token,
 * or its current context's). Per value, so a token in SILOBREAK_TOKEN works with a URL from a file.
 */
export function resolveConnection(sources: ConfigSources): Connection {
  const lab = chosenLab(sources);
  const candidates = (key: 'url' | 'token', flag: string, envName: string): Candidate[] => [
    { value: sources.flags[key], source: flag },
    ...(lab ? [lab[key]] : []),
    { value: sources.env[envName], source: envName },
    ...sources.files.map((f) => {
      const values = fileValues(f);
      return { value: values[key], source: values.lab ? `${f.path} (lab ${values.lab})` : f.path };
    }),
  ];
  const pick = (key: 'url' | 'token', flag: string, envName: string) =>
    candidates(key, flag, envName).find((c) => c.value !== undefined && c.value !== '');
  const url = pick('url', '--url', 'SILOBREAK_URL');
  const token = pick('token', '--token', 'SILOBREAK_TOKEN');
  const fileList = sources.files.map((f) => f.path).join(' or ');
  // Several labs and none current: which one is the user's to say.
  const undecided = sources.files.find(
    (f) => f.content?.current === undefined && Object.keys(f.content?.contexts ?? {}).length > 1,
  );
  if (!url?.value) {
    if (undecided)
      throw new UsageError(
        `several labs are up and none is current (${Object.keys(undecided.content?.contexts ?? {})
          .sort()
          .join(', ')})`,
        'pass --lab <lab>, or choose one with silobreak lab use <lab>',
      );
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
  return {
    url: url.value,
    token: token.value,
    source: { url: url.source, token: token.source },
    ...labNotice(sources, url.source),
  };
}

/** When the URL came from a file's current lab and that file knows others: say which one. */
function labNotice(sources: ConfigSources, urlSource: string): { notice?: string } {
  for (const f of sources.files) {
    const current = f.content?.current;
    const names = Object.keys(f.content?.contexts ?? {}).sort();
    if (current === undefined || names.length < 2 || urlSource !== `${f.path} (lab ${current})`) continue;
    const url = f.content?.contexts?.[current]?.url ?? '';
    return {
      notice: `silobreak: lab ${current}'s manager (${url}); ${names.length} labs are up (${names.join(', ')}): --lab <lab> or silobreak lab use <lab> picks another`,
    };
  }
  return {};
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
