// The web console end to end (issue 29): Debian's Chromium (playwright-core, no browser
// download) against a real 2-host lab — hosts in network namespaces, a TCG guest with two disks,
// the lab's own manager serving the built console — driven as a user would, by role and
// accessible name. host2 is the lab's Beast (class fast), host1 standard (limited). In order:
// sign in, Fabric, host; the Storage Explorer sorted by write p99 (writes on both disks first),
// a datastore; a live move from the VM page (checks and plan, the bar to 100 %, the VM on host2
// without a reload, checked by the API); the move on the Moves page and in the Change Explorer;
// the idle VM on the Beast gets a go-home recommendation (the lab's placement durations), applied
// on the Placement page; the tools disk inserted from the Tools page; a read-only token on every
// page. Each main page is checked by axe-core (no serious or critical violation), must log no
// error or warning in the browser console, and is saved as test-results/console/<page>.png
// (1366x768; Fabric, VM and Change Explorer also at 2560x1440). One lab, one guest, one browser.
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Page } from 'playwright-core';
import { ManagerClient } from './api/index.js';
import {
  axeFindings,
  ConsoleBrowser,
  describeProblems,
  ensureConsoleBuilt,
  LARGE_MONITOR,
  openSection,
  screenshot,
  settled,
  signIn,
  writeActions,
} from './console-kit.js';
import {
  inGuest,
  LAB_PLACEMENT_SETTINGS,
  labDown,
  labUp,
  until,
  type Lab,
  type LabHost,
} from './lab/index.js';

const LAB = 'webe2e';
const VM = 'web1';
const MiB = 2 ** 20;

let lab: Lab;
let api: ManagerClient;
let browser: ConsoleBrowser;
/** The admin's tab, signed in with the lab's admin token. */
let admin: Page;

before(
  async () => {
    // Built before the lab's manager starts: it serves the files present when it starts, and a
    // build empties src/web/dist first (side by side, a manager started mid-build served none).
    if (await ensureConsoleBuilt())
      console.log('# built the console (src/web/dist was older than its sources)');
    lab = await labUp({ name: LAB, hosts: 2, demo: false, accelerator: 'tcg', beast: 'host2' });
    if (!lab.manager) throw new Error('the lab started no manager');
    api = new ManagerClient(lab.manager.url, lab.manager.token, 120_000);
    const created = await api.createVm({
      host: 'host1',
      spec: {
        name: VM,
        vcpus: 1,
        memoryMiB: 256,
        disks: [
          { id: 'root', sizeBytes: 256 * MiB },
          { id: 'data', sizeBytes: 128 * MiB },
        ],
        nics: [{ vswitch: 'vmsw0' }],
        guestIp: lab.vmAddress(1).cidr,
        start: true,
      },
    });
    const job = await api.waitForJob(created.job.id, 300_000);
    assert.equal(job.state, 'succeeded', `creating ${VM}: ${JSON.stringify(job.error)}`);
    // Only the Beast's durations are shortened (evaluation every 2 s, 8-s holds, no minimum stay):
    // once the move below puts the idle VM on the fast class, a go-home recommendation follows.
    await api.setPlacementSettings(LAB_PLACEMENT_SETTINGS);
    browser = await ConsoleBrowser.launch(lab.manager.url);
    admin = await browser.tab('admin');
  },
  { timeout: 600_000 },
);

after(
  async () => {
    await browser?.close();
    // SB_KEEP_LAB=1 keeps the lab (agents' and manager's logs) to look at after a failure.
    if (!process.env.SB_KEEP_LAB) await labDown({ name: LAB });
  },
  { timeout: 300_000 },
);

/**
 * The checks every main page gets once it has settled: axe-core finds no serious or critical
 * violation, the browser console stayed clean since `since` (an index into the run's problems),
 * and a screenshot is saved as `<name>.png` (and at `sizes` too).
 */
async function checkPage(
  t: TestContext,
  page: Page,
  name: string,
  since: number,
  sizes: { width: number; height: number }[] = [],
): Promise<void> {
  const findings = await axeFindings(page);
  const shots = [await screenshot(page, name)];
  for (const size of sizes) shots.push(await screenshot(page, name, size));
  t.diagnostic(`screenshots: ${shots.join(', ')}`);
  assert.deepEqual(findings, [], `axe-core on the ${name} page (${page.url()}):\n${findings.join('\n')}`);
  const problems = browser.problems.slice(since);
  assert.deepEqual(problems, [], `the browser console on the ${name} page:\n${describeProblems(problems)}`);
}

test('sign in with the lab admin token; the Fabric page shows both hosts, their class and the VM', async (t) => {
  const since = browser.problems.length;
  await signIn(admin, lab.manager?.token ?? '');
  for (const [host, cls] of [
    ['host1', 'standard'],
    ['host2', 'fast'],
  ] as const) {
    const card = admin.getByRole('article', { name: host });
    await card.waitFor({ timeout: 10_000 });
    assert.equal(await card.getByText(cls, { exact: true }).count(), 1, `${host} shows its class ${cls}`);
  }
  const vms = admin.getByRole('table', { name: 'VMs on host1' });
  await vms.getByRole('link', { name: VM }).waitFor({ timeout: 10_000 });
  await vms.getByRole('row', { name: new RegExp(`${VM}.*running`) }).waitFor({ timeout: 60_000 });
  assert.equal(
    await admin.getByRole('table', { name: 'VMs on host2' }).getByRole('link', { name: VM }).count(),
    0,
    `${VM} is listed on host1 only`,
  );
  await checkPage(t, admin, 'fabric', since, [LARGE_MONITOR]);
});

test('the host page: its datastores and its VMs', async (t) => {
  const since = browser.problems.length;
  await openSection(admin, 'Fabric', 'Fabric');
  await admin.getByRole('link', { name: 'host1', exact: true }).click();
  await settled(admin, /^host1/);
  const datastores = admin.getByRole('table', { name: 'Datastores of host1' });
  await datastores.getByRole('link', { name: /^local/ }).waitFor({ timeout: 10_000 });
  await admin
    .getByRole('table', { name: 'VMs on host1' })
    .getByRole('link', { name: VM })
    .waitFor({ timeout: 10_000 });
  await checkPage(t, admin, 'host', since);
});

/** `12.3 ms`, `850 µs`, `1.2 s` as milliseconds; `—` (no figure) as null. */
function parseLatency(text: string): number | null {
  const m = /([0-9.]+)\s*(µs|us|ms|s)\b/.exec(text);
  if (!m) return null;
  return Number(m[1]) * { µs: 1e-3, us: 1e-3, ms: 1, s: 1000 }[m[2] as 'µs' | 'us' | 'ms' | 's'];
}

/** The lab host `vm` runs on now, as the API says. */
async function labHostOf(vm: string): Promise<LabHost> {
  const name = (await api.getVm(vm)).host;
  return lab.hosts.find((h) => h.name === name) ?? assert.fail(`${vm} on ${name}, not a lab host`);
}

test('the Storage Explorer sorts the disk table by write p99', async (t) => {
  // Writes on both disks over a few of the manager's 10-s samples: fsynced 64 KiB writes through
  // ext4 on root (/data), O_DIRECT 4 KiB writes on the raw data disk.
  const written = await inGuest(await labHostOf(VM), VM, [
    '/bin/sh',
    '-c',
    'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do ' +
      'dd if=/dev/urandom of=/data/w bs=64k count=16 conv=fsync 2>/dev/null && ' +
      'dd if=/dev/urandom of=/dev/vdb bs=4k count=100 oflag=direct 2>/dev/null && sleep 1 || exit 1; done',
  ]);
  assert.equal(written.exitCode, 0, `writing in the guest: ${written.stderr ?? ''}`);
  let rows = '';
  const deadline = Date.now() + 120_000;
  for (;;) {
    const disks = (await api.listStorageDisks({ q: VM, window: '15m' })).items;
    rows = disks.map((d) => `${d.disk}: ${d.write.iops} IOPS, p99 ${d.write.p99LatencyMs} ms`).join('; ');
    if (disks.filter((d) => (d.write.p99LatencyMs ?? 0) > 0).length >= 2) break;
    assert.ok(Date.now() < deadline, `write p99 of both disks of ${VM} in the explorer (API): ${rows}`);
    await sleep(2000);
  }
  t.diagnostic(`the API: ${rows}`);
  const since = browser.problems.length;
  await openSection(admin, 'Storage Explorer', 'Storage Explorer');
  const table = admin.getByRole('table', { name: /^VM disks/ });
  await table.waitFor({ timeout: 30_000 });
  const header = table.getByRole('columnheader', { name: 'Write p99' });
  const column = await table.getByRole('columnheader').allTextContents();
  const index = column.findIndex((c) => c.startsWith('Write p99'));
  assert.ok(index >= 0, `a Write p99 column: ${column.join(' | ')}`);
  const shown = async () =>
    (await table.locator('tbody tr').all()).length
      ? await table.locator(`tbody tr td:nth-child(${index + 1})`).allTextContents()
      : [];
  for (const order of ['descending', 'ascending'] as const) {
    await header.getByRole('button').click();
    if ((await header.getAttribute('aria-sort')) !== order) await header.getByRole('button').click();
    await table.locator(`th[aria-sort="${order}"]`, { hasText: 'Write p99' }).waitFor({ timeout: 10_000 });
    await settled(admin, 'Storage Explorer');
    const texts = await shown();
    const values = texts.map(parseLatency);
    t.diagnostic(`write p99 ${order}: ${texts.join(', ')}`);
    const known = values.filter((v): v is number => v !== null);
    assert.ok(known.length >= 2, `at least two disks with a write p99 shown: ${texts.join(', ')}`);
    const sorted = [...known].sort((a, b) => (order === 'descending' ? b - a : a - b));
    assert.deepEqual(known, sorted, `write p99 ${order}: ${texts.join(', ')}`);
    // Disks without a figure come last whichever way.
    const firstNull = values.indexOf(null);
    if (firstNull >= 0)
      assert.ok(
        values.slice(firstNull).every((v) => v === null),
        `disks without a figure come last: ${texts.join(', ')}`,
      );
  }
  await checkPage(t, admin, 'storage', since);
});

test('the datastore page: capacity and latency over time', async (t) => {
  const since = browser.problems.length;
  await admin
    .getByRole('table', { name: /^VM disks/ })
    .getByRole('link', { name: 'host1/local' })
    .first()
    .click();
  await settled(admin, /^Datastore host1\/local/);
  await checkPage(t, admin, 'datastore', since);
});

/** The `aria-valuenow` of the progress bar named `label`, recorded in the page at every change. */
const WATCH_PROGRESS = (label: string) => `(() => {
  const seen = (window.__progressSeen = []);
  const note = () => {
    const bar = document.querySelector('[role="progressbar"][aria-label="${label}"]');
    const value = bar ? Number(bar.getAttribute('aria-valuenow')) : undefined;
    if (value !== undefined && seen[seen.length - 1] !== value) seen.push(value);
  };
  note();
  new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow'] });
})()`;

test('the VM page: move it to host2 — checks and plan first, then the progress bar to 100 % and the VM on host2 without a reload', async (t) => {
  const since = browser.problems.length;
  await openSection(admin, 'Fabric', 'Fabric');
  await admin.getByRole('table', { name: 'VMs on host1' }).getByRole('link', { name: VM }).click();
  await settled(admin, new RegExp(`^${VM}`));
  await admin.getByRole('table', { name: `Disks of ${VM}` }).waitFor({ timeout: 10_000 });
  await checkPage(t, admin, 'vm', since, [LARGE_MONITOR]);

  await admin
    .getByRole('group', { name: 'Actions' })
    .getByRole('button', { name: 'Move', exact: true })
    .click();
  await admin.getByLabel('Target host').selectOption('host2');
  await admin.getByRole('button', { name: 'Check move' }).click();
  const plan = admin.getByRole('region', { name: 'Dry run: checks and plan' });
  await plan.waitFor({ timeout: 60_000 });
  const verdict = (await plan.getByRole('status').first().textContent()) ?? '';
  assert.match(verdict, /can go ahead/, `the dry run's verdict: ${verdict}`);
  const checks = await plan.getByRole('list', { name: 'Checks' }).getByRole('listitem').allTextContents();
  t.diagnostic(`checks shown: ${checks.length}; plan: ${verdict}`);
  assert.ok(checks.length >= 3, `the dry run's checks are listed: ${checks.join(' | ')}`);
  const planDisks = plan.getByRole('table', { name: 'Disks in this plan' });
  for (const disk of ['root', 'data'])
    assert.equal(
      await planDisks.getByRole('row', { name: new RegExp(`^${disk} host1:local host2:`) }).count(),
      1,
      `the plan moves disk ${disk} from host1:local to host2`,
    );
  await checkPage(t, admin, 'vm-move-plan', since);

  // Marks this document: a reload would lose the mark.
  await admin.evaluate('window.__sameDocument = true');
  const started = Date.now();
  await admin.getByRole('button', { name: 'Start move' }).click();
  const bar = admin.getByRole('progressbar', { name: 'Move progress' });
  await bar.waitFor({ timeout: 30_000 });
  await admin.evaluate(WATCH_PROGRESS('Move progress'));
  await admin
    .locator('[role="progressbar"][aria-label="Move progress"][aria-valuenow="100"]')
    .waitFor({ timeout: 300_000 });
  const seen = (await admin.evaluate('window.__progressSeen')) as number[];
  t.diagnostic(
    `move took ${((Date.now() - started) / 1000).toFixed(1)} s in the browser; progress seen: ${seen.join(', ')} %`,
  );
  const done = admin.getByRole('status').filter({ hasText: `${VM} now runs on host2` });
  await done.waitFor({ timeout: 30_000 });

  // The fabric shows it on host2 now, and the page was never reloaded.
  await openSection(admin, 'Fabric', 'Fabric');
  await admin
    .getByRole('table', { name: 'VMs on host2' })
    .getByRole('link', { name: VM })
    .waitFor({ timeout: 30_000 });
  assert.equal(await admin.evaluate('window.__sameDocument === true'), true, 'the page was not reloaded');
  const moved = await api.getVm(VM);
  assert.deepEqual(
    { host: moved.host, state: moved.state },
    { host: 'host2', state: 'running' },
    `${VM} as the API shows it after the move`,
  );
  const problems = browser.problems.slice(since);
  assert.deepEqual(problems, [], `the browser console during the move:\n${describeProblems(problems)}`);
});

test('the Moves page lists the finished move with its figures', async (t) => {
  const since = browser.problems.length;
  await openSection(admin, 'Moves', 'Moves');
  const finished = admin.getByRole('table', { name: 'Finished moves, newest first' });
  const row = finished.getByRole('row', { name: new RegExp(`^${VM} host move host1 → host2 succeeded`) });
  await row.waitFor({ timeout: 30_000 });
  t.diagnostic(`the move's row: ${await row.textContent()}`);
  await checkPage(t, admin, 'moves', since);
});

test('the Change Explorer finds the move by the VM name, with its before and after', async (t) => {
  const since = browser.problems.length;
  await openSection(admin, 'Change Explorer', 'Change Explorer');
  await admin.getByRole('searchbox', { name: 'Search changes' }).fill(VM);
  const list = admin.getByRole('table', { name: /^Changes, newest first/ });
  // The move's record: the VM's state changed, fields move, from, to.
  const row = list.getByRole('row', { name: new RegExp(`\\b${VM} state-changed move, from, to\\b`) });
  await row.first().waitFor({ timeout: 30_000 });
  // The list shows what the API finds for that text (the search is debounced: until it is).
  const objects = list.locator('tbody tr:not(.detail) td:nth-child(3)');
  let shown: string[] = [];
  let expected: string[] = [];
  for (const deadline = Date.now() + 20_000; ; await sleep(250)) {
    shown = await objects.allTextContents();
    expected = (await api.listChanges({ text: VM, limit: shown.length || 1 })).items.map(
      (c) => c.object.name,
    );
    if (shown.length > 0 && shown.join() === expected.join()) break;
    assert.ok(
      Date.now() < deadline,
      `the changes shown after searching ${VM}: ${shown.join(', ')}; the API finds: ${expected.join(', ')}`,
    );
  }
  t.diagnostic(`the move's change: ${await row.first().textContent()}`);
  await row
    .first()
    .getByRole('button', { name: /^Details of change/ })
    .click();
  const detail = list.locator('tr.detail');
  await detail.getByText('host2').first().waitFor({ timeout: 10_000 });
  // From the keyboard, a bar is picked in the select below the chart: the list narrows to its time.
  const bars = admin.getByRole('combobox', { name: 'Narrow to a bar' });
  await bars.focus();
  // The latest bar holds the move (the VM's latest change so far).
  const bar = (await bars.locator('option').allTextContents()).filter((o) => /: \d+ changes?$/.test(o)).pop();
  assert.ok(bar, 'the select offers the bar holding the move');
  await bars.selectOption({ label: bar });
  await admin.getByRole('button', { name: 'Clear time filter' }).waitFor({ timeout: 10_000 });
  await row.first().waitFor({ timeout: 10_000 });
  await checkPage(t, admin, 'changes', since, [LARGE_MONITOR]);
});

test('the Placement page applies the pending recommendation: the VM goes home to host1', async (t) => {
  const rec = await until(
    `a pending recommendation for ${VM}`,
    async () => (await api.listRecommendations()).items.find((r) => r.vm === VM),
    180_000,
  );
  t.diagnostic(`recommendation: ${rec.kind} to ${rec.to.host}/${rec.to.datastore}: ${rec.reason.text}`);
  const since = browser.problems.length;
  await openSection(admin, 'Placement', 'Placement');
  const apply = admin.getByRole('button', { name: `Apply recommendation for ${VM}` });
  await apply.waitFor({ timeout: 30_000 });
  await checkPage(t, admin, 'placement', since);
  await apply.click();
  const dialog = admin.getByRole('dialog', { name: `Apply the recommendation for ${VM}?` });
  await dialog.getByRole('button', { name: 'Start move' }).click();
  await until(
    `${VM} on ${rec.to.host}`,
    async () => ((await api.getVm(VM)).host === rec.to.host ? true : undefined),
    300_000,
  );
  const applied = (await api.listRecommendations({ state: 'all' })).items.find((r) => r.id === rec.id);
  assert.equal(applied?.state, 'applied', `the recommendation's state after Apply`);
  const problems = browser.problems.slice(since);
  assert.deepEqual(problems, [], `the browser console on the Placement page:\n${describeProblems(problems)}`);
});

test('the Tools page inserts the tools disk for the outdated VM', async (t) => {
  await until(
    `${VM}'s tools outdated`,
    async () => ((await api.getVm(VM)).tools?.status === 'outdated' ? true : undefined),
    120_000,
  );
  const since = browser.problems.length;
  await openSection(admin, 'Tools & copies', 'Guest tools and retained copies');
  const insert = admin.getByRole('button', { name: `Insert tools disk into ${VM}` });
  await insert.waitFor({ timeout: 30_000 });
  await checkPage(t, admin, 'tools', since);
  await insert.click();
  await admin.getByRole('status').filter({ hasText: 'Tools disk inserted.' }).waitFor({ timeout: 120_000 });
  assert.equal((await api.getVm(VM)).toolsDisk, true, `the API shows ${VM}'s tools disk inserted`);
  const problems = browser.problems.slice(since);
  assert.deepEqual(problems, [], `the browser console on the Tools page:\n${describeProblems(problems)}`);
});

/** Every main page by its route, as a read-only user reaches it, with its h1. */
const MAIN_PAGES: { name: string; route: string; heading: string | RegExp }[] = [
  { name: 'Fabric', route: '#/', heading: 'Fabric' },
  { name: 'host', route: '#/hosts/host1', heading: /^host1/ },
  { name: 'VM', route: `#/vms/${VM}`, heading: new RegExp(`^${VM}`) },
  { name: 'Moves', route: '#/moves', heading: 'Moves' },
  { name: 'Storage Explorer', route: '#/storage', heading: 'Storage Explorer' },
  { name: 'datastore', route: '#/storage/datastores/host1/local', heading: /^Datastore host1\/local/ },
  { name: 'Change Explorer', route: '#/changes', heading: 'Change Explorer' },
  { name: 'Placement', route: '#/placement', heading: 'Placement' },
  { name: 'Tools', route: '#/tools', heading: 'Guest tools and retained copies' },
];

test('a read-only token sees no write action on any page and sends no write request', async (t) => {
  const created = await api.createToken({ name: 'viewer', role: 'read-only' });
  const viewer = await browser.tab('read-only');
  const since = browser.problems.length;
  await signIn(viewer, created.secret);
  const seen: string[] = [];
  for (const main of MAIN_PAGES) {
    await viewer.goto(`/${main.route}`);
    await settled(viewer, main.heading);
    const actions = await writeActions(viewer);
    seen.push(`${main.name}: ${actions.length ? actions.join(', ') : 'none'}`);
    assert.deepEqual(actions, [], `write actions a read-only token sees on the ${main.name} page`);
  }
  t.diagnostic(`write actions seen: ${seen.join('; ')}`);
  assert.deepEqual(browser.writes.get('read-only'), [], 'write requests the read-only tab sent');
  const problems = browser.problems.slice(since);
  assert.deepEqual(problems, [], `the browser console of the read-only tab:\n${describeProblems(problems)}`);
});

test('no error or warning in the browser console during the whole run', () => {
  assert.deepEqual(
    browser.problems,
    [],
    `the browser console over the whole run:\n${describeProblems(browser.problems)}`,
  );
});
