// How numbers read in the console: binary sizes like the CLI, rates per second, short durations.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function bytes(n: number | undefined | null): string {
  if (n === undefined || n === null || !Number.isFinite(n)) return '—';
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 || value >= 100 ? 0 : 1)} ${UNITS[unit]}`;
}

export const rate = (n: number | undefined | null): string =>
  n === undefined || n === null ? '—' : `${bytes(n)}/s`;

export function fixed(n: number | undefined | null, digits = 1): string {
  return n === undefined || n === null || !Number.isFinite(n) ? '—' : n.toFixed(digits);
}

export const percent = (n: number | undefined | null): string =>
  n === undefined || n === null ? '—' : `${Math.round(n)} %`;

/** Nanoseconds as ms (latency figures arrive in ns). */
export const latencyMs = (ns: number | undefined | null): string =>
  ns === undefined || ns === null ? '—' : `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1)} ms`;

export function seconds(s: number | undefined | null): string {
  if (s === undefined || s === null || !Number.isFinite(s)) return '—';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${(s / 86_400).toFixed(1)} d`;
}

/** A timestamp as local date and time, to the second. */
export function when(iso: string | undefined | null): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { hour12: false });
}

/** How long ago, roughly ("3 min ago"). */
export function ago(iso: string | undefined | null, now = Date.now()): string {
  if (!iso) return '—';
  const s = Math.max(0, (now - new Date(iso).getTime()) / 1000);
  return `${seconds(s)} ago`;
}
