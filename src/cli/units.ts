// Sizes, durations and times as people type and read them. Pure, so they are unit-tested.

const binaryUnits: Record<string, number> = {
  '': 1,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
};

/**
 * Parses a size like `512M`, `1.5G`, `2GiB` or `64k` into bytes. K/M/G/T are binary (powers of
 * 1024) with or without `i`/`B`, as in QEMU's `-m 512M` and `qemu-img create 2G`, so a VM gets
 * what the same string gives it there. A unit is required: a bare `512` is ambiguous (QEMU reads it
 * as MiB for memory but as bytes for disks). Returns an error message rather than throwing, so the
 * caller can name the flag.
 */
export function parseSize(text: string): { bytes: number } | { error: string } {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$/i.exec(text);
  if (!m || m[1] === undefined) {
    return { error: `'${text}' is not a size: use a number and a unit K, M, G or T (e.g. 512M, 2G)` };
  }
  const unit = (m[2] ?? '').toUpperCase();
  const suffix = (m[3] ?? '').toLowerCase();
  if (unit === '' && suffix === '') {
    return { error: `'${text}' needs a unit: K, M, G or T (e.g. 512M, 2G); B for bytes` };
  }
  if (unit === '' && suffix !== 'b') {
    return { error: `'${text}' is not a size: '${m[3]}' needs a prefix K, M, G or T` };
  }
  const bytes = Number(m[1]) * (binaryUnits[unit] ?? 1);
  if (!Number.isInteger(bytes)) {
    return { error: `'${text}' is not a whole number of bytes` };
  }
  if (!Number.isSafeInteger(bytes)) return { error: `'${text}' is too large` };
  return { bytes };
}

const byteUnits = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** `1536 MiB` -> `1.5 GiB`: one decimal below 10, none above, binary units like the parser. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '-';
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  let i = 0;
  while (value >= 1024 && i < byteUnits.length - 1) {
    value /= 1024;
    i++;
  }
  const digits = i > 0 && value < 10 ? 1 : 0;
  const text = value.toFixed(digits).replace(/\.0$/, '');
  // Rounding can reach the next unit (1023.7 KiB prints as 1024): show it in that unit instead.
  if (text === '1024' && i < byteUnits.length - 1) return `${sign}1 ${byteUnits[i + 1]}`;
  return `${sign}${text} ${byteUnits[i]}`;
}

/** A transfer rate in bytes per second, e.g. `120 MiB/s`. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** `3725` -> `1h 02m`, `65` -> `1m 05s`, `4.2` -> `4s`, sub-second -> `0.3s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '-';
  if (seconds < 1) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${pad(Math.floor((s % 86400) / 3600))}h`;
}

/** A short pause in milliseconds (`45 ms`, `1.2 s` from a second on), as downtimes are read. */
export function formatMilliseconds(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : formatDuration(ms / 1000);
}

/** An ISO time relative to `now`: `just now`, `42s ago`, `5m ago`, `3h ago`, `2d ago`, `in 5m`. */
export function formatRelativeTime(iso: string | undefined | null, now: Date = new Date()): string {
  if (!iso) return '-';
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return iso;
  const delta = (now.getTime() - then) / 1000;
  const abs = Math.abs(delta);
  if (abs < 5) return 'just now';
  let text: string;
  if (abs < 60) text = `${Math.floor(abs)}s`;
  else if (abs < 3600) text = `${Math.floor(abs / 60)}m`;
  else if (abs < 86400) text = `${Math.floor(abs / 3600)}h`;
  else if (abs < 86400 * 60) text = `${Math.floor(abs / 86400)}d`;
  // Beyond two months a date reads better than a count of days.
  else return new Date(then).toISOString().slice(0, 10);
  return delta >= 0 ? `${text} ago` : `in ${text}`;
}

const ageUnits: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 };

/**
 * A point in time as a filter: an age like `30m`, `2h`, `7d` (that long before `now`) or an ISO
 * date/time (`2026-01-10`, `2026-01-10T12:00:00Z`). Returns ISO-8601 UTC, or an error message.
 */
export function parseTimeFilter(text: string, now: Date = new Date()): { iso: string } | { error: string } {
  const age = /^(\d+)\s*([smhdw])$/i.exec(text.trim());
  if (age?.[1] && age[2]) {
    const seconds = Number(age[1]) * (ageUnits[age[2].toLowerCase()] ?? 1);
    return { iso: new Date(now.getTime() - seconds * 1000).toISOString() };
  }
  // Only full dates or date-times with a zone: a bare local time would mean different things on different machines.
  if (/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(text.trim())) {
    const ms = Date.parse(text.trim());
    if (!Number.isNaN(ms)) return { iso: new Date(ms).toISOString() };
  }
  return {
    error: `'${text}' is not a time: use an age like 30m, 2h, 7d or an ISO time like 2026-01-10T12:00:00Z`,
  };
}
