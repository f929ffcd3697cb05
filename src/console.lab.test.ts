// The web console end to end (issue 29): Debian's Chromium (playwright-core, no browser
// download) against a real 2-host lab — hosts in network namespaces, a TCG guest, the lab's own
// manager serving the built console — driven as a user would, by role and accessible name.
// host2 is the lab's Beast (class fast), host1 standard. Each main page is checked by axe-core
// (no serious or critical violation), must log no error or warning in the browser console, and
// is saved as a screenshot under test-results/console/ (1366x768; Fabric and the VM page also at
// 2560x1440). One lab, one guest, one browser for the file.
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
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
let host1: LabHost;
let api: ManagerClient;
let browser: ConsoleBrowser;
/** The admin's tab, signed in with the lab's admin token. */
let admin: Page;

before(
  async () => {
    const [built] = await Promise.all([
      ensureConsoleBuilt(),
      labUp({ name: LAB, hosts: 2, demo: false, accelerator: 'tcg', beast: 'host2' }).then((l) => (lab = l)),
    ]);
    if (built) console.log('# built the console (src/web/dist was older than its sources)');
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
    host1 = lab.hosts[0] ?? assert.fail('the lab has no host1');
    // Only the Beast's durations are shortened (evaluation every 2 s, 8-s holds, no minimum stay):
    // once the move below puts the idle VM on the fast class, a go-home recommendation follows.
    await api.setPlacementSettings(LAB_PLACEMENT_SETTINGS);
    // Writes on both disks, for the Storage Explorer's figures: fsynced 64 KiB writes through
    // ext4 on root (/data), and O_DIRECT 4 KiB writes on the raw data disk (host1's 400 IOPS).
    const written = await inGuest(host1, VM, [
      '/bin/sh',
      '-c',
      'dd if=/dev/urandom of=/data/w bs=64k count=160 conv=fsync && ' +
        'dd if=/dev/urandom of=/dev/vdb bs=4k count=1200 oflag=direct',
    ]);
    assert.equal(written.exitCode, 0, `writing in the guest: ${written.stderr ?? ''}`);
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
  await admin.waitForFunction(
    `document.querySelector('[role="progressbar"][aria-label="Move progress"]')?.getAttribute('aria-valuenow') === '100'`,
    undefined,
    { timeout: 300_000 },
  );
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
  const row = admin.getByRole('row', { name: new RegExp(`${VM}.*host1.*host2`) });
  await row.first().waitFor({ timeout: 30_000 });
  t.diagnostic(`the move's row: ${await row.first().textContent()}`);
  await checkPage(t, admin, 'moves', since);
});

test('the Change Explorer finds the move by the VM name', async (t) => {
  const since = browser.problems.length;
  await openSection(admin, 'Change Explorer', 'Change Explorer');
  await admin
    .getByRole('searchbox', { name: /search/i })
    .first()
    .fill(VM);
  const row = admin.getByRole('row', { name: new RegExp(`${VM}.*move`, 'i') });
  await row.first().waitFor({ timeout: 30_000 });
  t.diagnostic(`the move's change: ${await row.first().textContent()}`);
  await checkPage(t, admin, 'changes', since);
});

/** `12.3 ms`, `850 µs`, `1.2 s` as milliseconds; `—` (no figure) as null. */
function parseLatency(text: string): number | null {
  const m = /([0-9.]+)\s*(µs|us|ms|s)\b/.exec(text);
  if (!m) return null;
  return Number(m[1]) * { µs: 1e-3, us: 1e-3, ms: 1, s: 1000 }[m[2] as 'µs' | 'us' | 'ms' | 's'];
}

test('the Storage Explorer sorts the disk table by write p99', async (t) => {
  await until(
    `write p99 of both disks of ${VM} in the explorer`,
    async () => {
      const disks = (await api.listStorageDisks({ q: VM, window: '15m' })).items;
      return disks.filter((d) => (d.write.p99LatencyMs ?? 0) > 0).length >= 2 ? true : undefined;
    },
    120_000,
  );
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
    await admin.waitForFunction(
      `[...document.querySelectorAll('th[aria-sort]')].some((th) => th.textContent.startsWith('Write p99') && th.getAttribute('aria-sort') === '${order}')`,
      undefined,
      { timeout: 10_000 },
    );
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
  await checkPage(t, admin, 'storage', since, [LARGE_MONITOR]);
});

test('the datastore page: capacity and latency over time', async (t) => {
  const since = browser.problems.length;
  await admin.goto('/#/storage/datastores/host2/local');
  await settled(admin, /local/);
  await checkPage(t, admin, 'datastore', since);
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
  { name: 'datastore', route: '#/storage/datastores/host1/local', heading: /local/ },
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
