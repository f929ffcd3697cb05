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
import { labDown, labUp, type Lab } from './lab/index.js';

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

/** Every main page by its route, as a read-only user reaches it, with its h1. */
const MAIN_PAGES: { name: string; route: string; heading: string | RegExp }[] = [
  { name: 'Fabric', route: '#/', heading: 'Fabric' },
  { name: 'host', route: '#/hosts/host1', heading: /^host1/ },
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
