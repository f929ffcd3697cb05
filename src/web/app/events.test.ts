import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readEventStream, type StreamEvent } from './events.js';

/** A response whose body arrives in the given chunks, as a network delivers it. */
function chunked(chunks: string[]): Response {
  const encoder = new TextEncoder();
  return new Response(
    new ReadableStream<Uint8Array>({
      start(controller) {
        for (const c of chunks) controller.enqueue(encoder.encode(c));
        controller.close();
      },
    }),
  );
}

test('events split anywhere across chunks arrive whole, comments and CRLF are handled', async () => {
  const events: StreamEvent[] = [];
  const response = chunked([
    ': keep-alive\n\nevent: re',
    'ady\ndata: {"kind":"ready"}\n',
    '\nevent: job\r\ndata: {"a":\r\ndata: 1}\r\n\r\n',
    'data: plain\n\n',
    'event: job\ndata: {"cut":',
  ]);
  await readEventStream(response, (e) => events.push(e), new AbortController().signal);
  assert.deepEqual(events, [
    { event: 'ready', data: '{"kind":"ready"}' },
    { event: 'job', data: '{"a":\n1}' },
    { event: 'message', data: 'plain' },
  ]);
});

test('aborting ends the read', async () => {
  const abort = new AbortController();
  const events: StreamEvent[] = [];
  // A stream that never ends by itself.
  const response = new Response(
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('event: job\ndata: 1\n\n'));
      },
    }),
  );
  const reading = readEventStream(
    response,
    (e) => {
      events.push(e);
      abort.abort();
    },
    abort.signal,
  );
  // Resolves (the reader is cancelled) although the stream itself never ends.
  await reading;
  assert.deepEqual(events, [{ event: 'job', data: '1' }]);
});
