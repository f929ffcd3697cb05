// Small state labels: text first (never colour alone), a class for the colour.

export function StateBadge({ state }: { state: string }) {
  return <span className={`badge state-${state}`}>{state}</span>;
}

const TOOLS_TEXT: Record<string, string> = {
  current: 'current',
  outdated: 'upgrade',
  missing: 'missing',
  'not-answering': 'not answering',
};

export function ToolsBadge({ status }: { status: string | null }) {
  if (status === null) return <span className="badge tools-unknown">—</span>;
  return <span className={`badge tools-${status}`}>{TOOLS_TEXT[status] ?? status}</span>;
}
