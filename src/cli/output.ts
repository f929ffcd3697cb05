// How output looks: tables and colour for people at a terminal, JSON for scripts.

export interface OutputStyle {
  /** Print API objects as JSON on stdout instead of tables. */
  json: boolean;
  /** ANSI colour in tables and messages. */
  color: boolean;
  /** A live, redrawn progress bar (else sparse plain lines, or nothing with --json). */
  progressBar: boolean;
}

/** No colour and no redrawn bar unless stdout is a terminal and NO_COLOR is unset (no-color.org). */
export function decideStyle(
  json: boolean,
  stdoutIsTty: boolean,
  env: Record<string, string | undefined>,
): OutputStyle {
  const plain = !stdoutIsTty || Boolean(env.NO_COLOR) || env.TERM === 'dumb';
  return { json, color: !json && !plain, progressBar: !json && !plain };
}

const codes = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1 } as const;
export type Paint = keyof typeof codes;

export function paint(style: OutputStyle, how: Paint, text: string): string {
  return style.color ? `\x1b[${codes[how]}m${text}\x1b[0m` : text;
}

/** States that are fine read green, broken ones red, transitions yellow. */
export function paintState(style: OutputStyle, state: string): string {
  if (['running', 'connected', 'succeeded'].includes(state)) return paint(style, 'green', state);
  if (['crashed', 'failed', 'unreachable', 'cancelled'].includes(state)) return paint(style, 'red', state);
  if (['stopped', 'queued'].includes(state)) return state;
  return paint(style, 'yellow', state);
}

/** Visible width of a string that may hold colour codes. */
export function visibleLength(text: string): number {
  return [...stripAnsi(text)].length;
}

export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, '');
}

/**
 * Text safe to print to a terminal: control characters (ESC, BEL, NUL, CR, ...) and bidirectional
 * overrides in API data (a pool description, an agent's error) are shown as escapes like `\x1b`
 * or `\u202e` instead of being obeyed. Newlines and tabs stay; so do the colour codes `paint`
 * itself writes, the only escape sequences the CLI emits (they can only colour, bold or dim).
 */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (m) => {
    if (m.length > 1 || m === '\n' || m === '\t') return m;
    const code = m.codePointAt(0) ?? 0;
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
const UNSAFE = new RegExp(
  `\\x1b\\[(?:0|${Object.values(codes).join('|')})m|[\\p{Cc}\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]`,
  'gu',
);
