// Pure helpers the explorers share: the windows people pick, the server-side sort a header click
// asks for, and which rows have an active storage issue.
import {
  datastoresOfSubject,
  EXPLORER_WINDOWS,
  TEXT_SORTS,
  type IssueSeverity,
  type StorageIssue,
} from '../../../api/browser.js';

/** The windows the Storage Explorer offers: those the store keeps summed (fast in any sort). */
export const WINDOWS = EXPLORER_WINDOWS;

const UNIT_WORDS = { m: 'minute', h: 'hour', d: 'day' } as const;

/** `15m` -> `15 minutes`, `1h` -> `1 hour`: how a window reads in a label. */
export function windowText(window: string): string {
  const m = /^([0-9]+)([mhd])$/.exec(window);
  if (!m) return window;
  const n = Number(m[1]);
  const word = UNIT_WORDS[m[2] as keyof typeof UNIT_WORDS];
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export interface ServerSort {
  key: string;
  desc: boolean;
}

/**
 * The sort a click on a column header asks for: the same column flips its order; a new column
 * starts where the server's default puts it (names A to Z, figures largest first — the slowest
 * disk is what one looks for).
 */
export function nextSort(current: ServerSort, key: string): ServerSort {
  if (current.key === key) return { key, desc: !current.desc };
  return { key, desc: !TEXT_SORTS.includes(key) };
}

/** The query's `sort`/`order` of a sort state. */
export const sortQuery = <K extends string>(sort: { key: K; desc: boolean }) => ({
  sort: sort.key,
  order: sort.desc ? ('desc' as const) : ('asc' as const),
});

const RANK: Record<IssueSeverity, number> = { info: 0, warning: 1, critical: 2 };

/** Issue subjects as the explorer's rows name them: `datastore:host/ds`, `disk:vm/disk`, `vm:vm`. */
export const subjectKey = (kind: StorageIssue['subject']['kind'], name: string) => `${kind}:${name}`;

export interface IssueMark {
  severity: IssueSeverity;
  /** Each issue's message, for the row's marker. */
  messages: string[];
}

/** Active issues by subject, with the worst severity of each. */
export function issueMarks(issues: readonly StorageIssue[]): Map<string, IssueMark> {
  const out = new Map<string, IssueMark>();
  for (const issue of issues) {
    if (!issue.active) continue;
    // A shared storage's issue marks each datastore that sees it.
    const names =
      issue.subject.kind === 'datastore' ? datastoresOfSubject(issue.subject.name) : [issue.subject.name];
    for (const name of names) {
      const key = subjectKey(issue.subject.kind, name);
      const mark = out.get(key);
      if (!mark) out.set(key, { severity: issue.severity, messages: [issue.message] });
      else {
        mark.messages.push(issue.message);
        if (RANK[issue.severity] > RANK[mark.severity]) mark.severity = issue.severity;
      }
    }
  }
  return out;
}

/** The marks of a disk: its own and its VM's (a VM's filesystem or tools issue), worst first. */
export function diskMark(
  marks: ReadonlyMap<string, IssueMark>,
  vm: string,
  disk: string,
): IssueMark | undefined {
  const found = [marks.get(subjectKey('disk', `${vm}/${disk}`)), marks.get(subjectKey('vm', vm))].filter(
    (m): m is IssueMark => m !== undefined,
  );
  if (found.length === 0) return undefined;
  return {
    severity: found.reduce<IssueSeverity>(
      (worst, m) => (RANK[m.severity] > RANK[worst] ? m.severity : worst),
      'info',
    ),
    messages: found.flatMap((m) => m.messages),
  };
}

/** The row class of a mark (the shared stylesheet's `issue` and `critical`). */
export const markClass = (mark: IssueMark | undefined): string | undefined =>
  mark === undefined ? undefined : mark.severity === 'critical' ? 'issue critical' : 'issue';
