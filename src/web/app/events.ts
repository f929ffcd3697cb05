// Server-sent events read with fetch (EventSource cannot send the token's header): one job's
// progress for a move's progress bar, and the fabric-wide stream that refreshes every page.
import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { Job } from '../../api/browser.js';
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

/**
 * Keeps every page fresh: until the fabric-wide event stream is wired, a modest refresh.
 * Returns whether live updates are flowing.
 */
export function useFabricEvents(): boolean {
  const queryClient = useQueryClient();
  useEffect(() => {
    const timer = setInterval(() => void queryClient.invalidateQueries(), 10_000);
    return () => clearInterval(timer);
  }, [queryClient]);
  return false;
}
