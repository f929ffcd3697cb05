// Server-sent events read with fetch (EventSource cannot send the token's header): the fabric-wide
// stream, which refreshes every page and carries each job's progress for the progress bars.
import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useState, useSyncExternalStore } from 'react';
import { FabricEvent, TERMINAL_JOB_STATES, type Job } from '../../api/browser.js';
import { problemOf, request, type Input, type RouteName } from './api.js';
import { useApi } from './hooks.js';
import { useSession } from './session.js';

export interface StreamEvent {
  event: string;
  data: string;
}

/**
 * Reads an event stream until it ends or `signal` aborts, calling `onEvent` for each event
 * (the text/event-stream format: `event:` and `data:` lines, a blank line ends an event).
 */
export async function readEventStream(
  response: Response,
  onEvent: (event: StreamEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  if (!response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener('abort', () => void reader.cancel().catch(() => undefined), { once: true });
  let buffer = '';
  let event = 'message';
  let data: string[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, '');
      buffer = buffer.slice(newline + 1);
      if (line === '') {
        if (data.length) onEvent({ event, data: data.join('\n') });
        event = 'message';
        data = [];
      } else if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
  }
}

/** Opens one route's event stream with the token; resolves when it ends. */
export async function openStream<K extends RouteName>(
  name: K,
  input: Input<K>,
  token: string,
  onEvent: (event: StreamEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  const { url, init } = request(name, input, token);
  const response = await fetch(url, {
    ...init,
    headers: { ...(init.headers as Record<string, string>), accept: 'text/event-stream' },
    signal,
  });
  if (!response.ok) throw await problemOf(response);
  await readEventStream(response, onEvent, signal);
}

/**
 * The latest snapshot of each job the fabric stream told of. Progress bars read it instead of
 * opening a job's own stream: a browser has six connections to the manager, and one stream per
 * move would take them all.
 */
const jobSnapshots = new Map<string, Job>();
const jobListeners = new Set<() => void>();
/** Enough for every job a page shows; the oldest are dropped. */
const MAX_JOB_SNAPSHOTS = 500;

function publishJob(job: Job): void {
  jobSnapshots.delete(job.id);
  jobSnapshots.set(job.id, job);
  if (jobSnapshots.size > MAX_JOB_SNAPSHOTS) {
    const oldest = jobSnapshots.keys().next().value;
    if (oldest !== undefined) jobSnapshots.delete(oldest);
  }
  for (const listener of jobListeners) listener();
}

function subscribeJobs(listener: () => void): () => void {
  jobListeners.add(listener);
  return () => jobListeners.delete(listener);
}

/** The later of two snapshots of one job. */
function newer(a: Job | undefined, b: Job | undefined): Job | undefined {
  if (!a) return b;
  if (!b) return a;
  return Date.parse(b.updatedAt) > Date.parse(a.updatedAt) ? b : a;
}

/** A job the page already read (a list's row), kept current by the fabric stream. */
export function useLiveJob(job: Job): Job {
  const live = useSyncExternalStore(subscribeJobs, () => jobSnapshots.get(job.id));
  return newer(job, live) ?? job;
}

/** A job as it progresses: the fabric stream's latest snapshot, or the job as last read. */
export function useJobProgress(jobId: string | undefined): Job | undefined {
  const live = useSyncExternalStore(subscribeJobs, () => (jobId ? jobSnapshots.get(jobId) : undefined));
  const read = useApi('getJob', { params: { id: jobId ?? '' } }, { enabled: jobId !== undefined });
  return newer(read.data, live);
}

/** What each kind of fabric event makes stale: the route families whose reads it may change. */
const STALE_AFTER: Record<string, readonly RouteName[] | 'all'> = {
  inventory: 'all',
  job: ['listJobs', 'getJob', 'getPlacementStatus', 'listPlacementRecommendations'],
  issue: ['listStorageIssues', 'listStorageDatastores', 'listStorageDisks'],
  change: ['listChanges', 'changeTimeline'],
};

/** At most one refresh a second however fast events come (a move's progress is several a second). */
const REFRESH_EVERY_MS = 1000;
const RECONNECT_MS = [1000, 2000, 5000, 10_000];

/**
 * Keeps every page fresh from the fabric's event stream (GET /api/v1/events): each event marks
 * the reads it may change as stale (the pages on screen re-read them), a finished job everything.
 * Reconnects by itself; after each (re)connect everything is re-read once, since events are not
 * replayed. Returns whether the stream is connected.
 */
export function useFabricEvents(): boolean {
  const { token } = useSession();
  const queryClient = useQueryClient();
  const [live, setLive] = useState(false);
  useEffect(() => {
    const abort = new AbortController();
    let stale: Set<string> | 'all' = new Set();
    const flush = setInterval(() => {
      if (stale !== 'all' && stale.size === 0) return;
      const families = stale;
      stale = new Set();
      void queryClient.invalidateQueries({
        // The session's own read is not refreshed by events: a blip must not sign anyone out.
        predicate: (q) =>
          q.queryKey[0] !== 'session' && (families === 'all' || families.has(String(q.queryKey[0]))),
      });
    }, REFRESH_EVERY_MS);
    const mark = (what: readonly string[] | 'all') => {
      if (stale === 'all') return;
      if (what === 'all') stale = 'all';
      else for (const family of what) stale.add(family);
    };
    const onEvent = (e: StreamEvent) => {
      if (e.event === 'ready') {
        setLive(true);
        mark('all');
        return;
      }
      const parsed = FabricEvent.safeParse(JSON.parse(e.data));
      if (!parsed.success) return;
      const event = parsed.data;
      if (event.kind === 'job') publishJob(event.job);
      if (event.kind === 'job' && (TERMINAL_JOB_STATES as readonly string[]).includes(event.job.state))
        mark('all');
      else mark(STALE_AFTER[event.kind] ?? 'all');
    };
    void (async () => {
      for (let attempt = 0; !abort.signal.aborted; attempt += 1) {
        try {
          await openStream('streamFabricEvents', {}, token, onEvent, abort.signal);
          attempt = 0;
        } catch {
          // Refused or cut: shown as reconnecting, tried again below.
        }
        setLive(false);
        if (abort.signal.aborted) return;
        await new Promise((r) => setTimeout(r, RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)]));
      }
    })();
    return () => {
      abort.abort();
      clearInterval(flush);
    };
  }, [token, queryClient]);
  return live;
}
