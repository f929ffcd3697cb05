// Server-sent events read with fetch (EventSource cannot send the token's header): one job's
// progress for a move's progress bar, and the fabric-wide stream that refreshes every page.
import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { FabricEvent, Job, TERMINAL_JOB_STATES } from '../../api/browser.js';
import { problemOf, request, type Input, type RouteName } from './api.js';
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

/** A job as it progresses, from its event stream (which ends when the job does). */
export function useJobProgress(jobId: string | undefined): Job | undefined {
  const { token } = useSession();
  const queryClient = useQueryClient();
  const [job, setJob] = useState<Job | undefined>(undefined);
  useEffect(() => {
    setJob(undefined);
    if (!jobId) return;
    const abort = new AbortController();
    openStream(
      'streamJobEvents',
      { params: { id: jobId } },
      token,
      (e) => {
        if (e.event !== 'job') return;
        const parsed = Job.safeParse(JSON.parse(e.data));
        if (parsed.success) setJob(parsed.data);
      },
      abort.signal,
    )
      // The job ended (or the stream broke): what it changed is shown fresh.
      .then(() => queryClient.invalidateQueries())
      .catch(() => undefined);
    return () => abort.abort();
  }, [jobId, token, queryClient]);
  return job;
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
