// The shipped Prometheus alerting rules: the committed file is what the code renders from the
// manager's default thresholds, it covers every storage rule, and `promtool check rules` accepts
// it. promtool comes with Debian's `prometheus` package (scripts/setup.sh installs it); without
// it this test fails and says so. UPDATE_ALERT_RULES=1 rewrites the file from the code.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { DRIFT_RULES, STORAGE_RULES } from '../../api/index.js';
import { ALERTS, renderAlertRules } from './prometheus-rules.js';

const FILE = path.resolve(import.meta.dirname, '../../../deploy/prometheus/silobreak-alerts.yml');

test('deploy/prometheus/silobreak-alerts.yml is what the code renders', async () => {
  const rendered = renderAlertRules();
  if (process.env.UPDATE_ALERT_RULES === '1') await writeFile(FILE, rendered);
  assert.equal(await readFile(FILE, 'utf8'), rendered, 'run with UPDATE_ALERT_RULES=1 to regenerate');
});

test("every storage rule has an alert (drift is the manager's own), each alert a severity the manager uses", () => {
  const fromFigures = STORAGE_RULES.filter((r) => !(DRIFT_RULES as readonly string[]).includes(r));
  assert.deepEqual([...new Set(ALERTS.map((a) => a.rule))].sort(), [...fromFigures].sort());
  for (const a of ALERTS) assert.match(a.alert, /^Silobreak[A-Za-z0-9]+$/);
});

test('promtool check rules accepts the file', async () => {
  let out: { stdout: string; stderr: string };
  try {
    out = await promisify(execFile)('promtool', ['check', 'rules', FILE]);
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (e.code === 'ENOENT')
      assert.fail(
        'promtool is not installed: apt-get install prometheus (scripts/setup.sh should install it)',
      );
    assert.fail(`promtool check rules failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
  assert.match(out.stdout + out.stderr, new RegExp(`SUCCESS: ${ALERTS.length} rules found`));
});
