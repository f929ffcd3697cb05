// Both OpenAPI documents pass `redocly lint` with its recommended rules, no error and no warning:
// the manager's as a running manager serves it, the agent's as its generator writes it. The
// locally installed CLI runs offline (no telemetry, no update check).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { z } from 'zod';
import { agentOpenApiDocument, ManagerClient, OpenApiDocument } from './api/index.js';
import { startManager, testDatabase } from './manager/index.js';

const root = path.resolve(import.meta.dirname, '..');
const redocly = path.join(root, 'node_modules/.bin/redocly');
let dir: string;

const Report = z.object({
  totals: z.object({ errors: z.number(), warnings: z.number() }),
  problems: z.array(
    z.looseObject({
      ruleId: z.string(),
      severity: z.string(),
      message: z.string(),
      location: z.array(z.looseObject({ pointer: z.string().optional() })).optional(),
    }),
  ),
});

/** redocly's recommended rules on one document: its report (errors make it exit non-zero). */
async function lint(name: string, document: unknown): Promise<z.infer<typeof Report>> {
  const file = path.join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify(document, null, 2));
  const run = await promisify(execFile)(redocly, ['lint', file, '--extends=recommended', '--format=json'], {
    cwd: dir,
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    maxBuffer: 64 * 1024 * 1024,
  }).catch((error: unknown) => error as { stdout?: string; stderr?: string });
  const stdout = run.stdout ?? '';
  const json = stdout.slice(stdout.indexOf('{'));
  try {
    return Report.parse(JSON.parse(json));
  } catch {
    throw new Error(`redocly gave no report:\n${stdout}${run.stderr ?? ''}`);
  }
}

function assertClean(report: z.infer<typeof Report>): void {
  const lines = report.problems.map(
    (p) => `${p.severity} ${p.ruleId}: ${p.message} (${p.location?.[0]?.pointer ?? ''})`,
  );
  assert.deepEqual(
    [report.totals.errors, report.totals.warnings],
    [0, 0],
    `redocly lint:\n${lines.slice(0, 30).join('\n')}`,
  );
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-openapi-lint-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("the manager's OpenAPI document passes redocly's recommended rules", { timeout: 120_000 }, async () => {
  const manager = await startManager({
    ...(await testDatabase(path.join(dir, 'manager'))),
    dataDir: path.join(dir, 'manager'),
    reconcileIntervalSeconds: 3600,
    log: () => {},
  });
  try {
    const document = await new ManagerClient(manager.url, manager.adminToken ?? '').openApi();
    assertClean(await lint('manager', document));
  } finally {
    await manager.close();
  }
});

test("the agent's OpenAPI document passes redocly's recommended rules", { timeout: 120_000 }, async () => {
  assertClean(await lint('agent', agentOpenApiDocument('0.0.0-test')));
});

/** Every JSON schema inside a document, with where it is. */
function* schemas(node: unknown, at: string): Generator<[Record<string, unknown>, string]> {
  if (Array.isArray(node)) {
    for (const [i, item] of node.entries()) yield* schemas(item, `${at}/${i}`);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const record = node as Record<string, unknown>;
  if (typeof record.type === 'string' || 'anyOf' in record || 'oneOf' in record) yield [record, at];
  for (const [key, value] of Object.entries(record)) yield* schemas(value, `${at}/${key}`);
}

test('both documents: only standard formats; every request object refuses members it does not declare', async () => {
  const manager = await startManager({
    ...(await testDatabase(path.join(dir, 'manager-formats'))),
    dataDir: path.join(dir, 'manager-formats'),
    reconcileIntervalSeconds: 3600,
    log: () => {},
  });
  try {
    const documents = {
      manager: OpenApiDocument.parse(
        await new ManagerClient(manager.url, manager.adminToken ?? '').openApi(),
      ),
      agent: agentOpenApiDocument('0.0.0-test'),
    };
    const standard =
      /^(date-time|date|time|duration|e?mail|idn-email|hostname|idn-hostname|ipv4|ipv6|uri|uri-reference|iri|iri-reference|uuid|uri-template|json-pointer|relative-json-pointer|regex)$/;
    for (const [name, document] of Object.entries(documents)) {
      const formats = [...schemas(document, name)].filter(([s]) => typeof s.format === 'string');
      assert.deepEqual(
        formats
          .filter(([s]) => !standard.test(String(s.format)))
          .map(([s, at]) => `${at}: ${String(s.format)}`),
        [],
      );
      for (const [p, methods] of Object.entries(document.paths))
        for (const [method, op] of Object.entries(methods)) {
          const bodies = Object.values(op.requestBody?.content ?? {}).map((c) => c.schema);
          const open = [...schemas(bodies, `${method} ${p}`)].filter(
            ([s]) => s.type === 'object' && s.properties !== undefined && s.additionalProperties !== false,
          );
          assert.deepEqual(
            open.map(([, at]) => at),
            [],
            `${name}: request objects that would take any member`,
          );
        }
    }
  } finally {
    await manager.close();
  }
});
