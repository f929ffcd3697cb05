/* The agent's log: one JSON object per line on stdout (the lab redirects it to a file). */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export function jsonLineLogger(
  level: LogLevel,
  write: (line: string) => void = (l) => process.stdout.write(l),
): Logger {
  const emit =
    (at: Exclude<LogLevel, 'silent'>) =>
    (msg: string, fields: Fields = {}) => {
      if (RANK[at] < RANK[level]) return;
      write(`${JSON.stringify({ time: new Date().toISOString(), level: at, msg, ...fields })}\n`);
    };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

/**
 * A logger that never writes `secrets` (the agent's own token, wherever a message or field might
 * carry it): each occurrence becomes `<redacted>`.
 */
export function redactingLogger(log: Logger, secrets: readonly string[]): Logger {
  const kept = secrets.filter((s) => s.length >= 8);
  const scrub = (value: unknown): unknown => {
    if (typeof value === 'string') return kept.reduce((v, s) => v.split(s).join('<redacted>'), value);
    if (Array.isArray(value)) return value.map(scrub);
    if (value !== null && typeof value === 'object')
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v)]));
    return value;
  };
  const wrap =
    (emit: Logger['info']) =>
    (msg: string, fields?: Fields): void =>
      emit(scrub(msg) as string, fields === undefined ? undefined : (scrub(fields) as Fields));
  return { debug: wrap(log.debug), info: wrap(log.info), warn: wrap(log.warn), error: wrap(log.error) };
}
