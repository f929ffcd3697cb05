// What the web console's end-to-end tests do with a browser: Debian's Chromium driven by
// playwright-core (no browser download), signed in as a user, with every console error and
// warning of the whole run collected, axe-core's check of a page, and screenshots.
import { execFile } from 'node:child_process';
import { mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import axe from 'axe-core';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

const ROOT = path.resolve(import.meta.dirname, '..');
/** Where the screenshots go (git ignores it): `test-results/console/<page>.png`. */
export const SCREENSHOT_DIR = path.join(ROOT, 'test-results', 'console');
export const LAPTOP = { width: 1366, height: 768 } as const;
export const LARGE_MONITOR = { width: 2560, height: 1440 } as const;

/** What Chromium needs here: root needs --no-sandbox; the rest keeps it off the (closed) network. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The newest modification time (ms) of any file under `dir`. */
async function newestUnder(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    newest = Math.max(newest, (await stat(path.join(entry.parentPath, entry.name))).mtimeMs);
  }
  return newest;
}

/**
 * The console the manager serves (src/web/dist) built from the sources as they are: `npm test`'s
 * set-up builds it, so there it is fresh and nothing runs; a lab file run by itself after an edit
 * builds it (`npm run build:web`) rather than test yesterday's pages. Returns whether it built.
 */
export async function ensureConsoleBuilt(): Promise<boolean> {
  const web = path.join(ROOT, 'src', 'web');
  const built = await stat(path.join(web, 'dist', 'index.html')).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  // The bundle holds the app and the api part's browser half (schemas, route table).
  const sources = Math.max(
    await newestUnder(path.join(web, 'app')),
    await newestUnder(path.join(ROOT, 'src', 'api')),
    (await stat(path.join(web, 'vite.config.ts'))).mtimeMs,
  );
  if (built > sources) return false;
  await promisify(execFile)('npm', ['run', '-s', 'build:web'], { cwd: ROOT, timeout: 300_000 });
  return true;
}

/** One error or warning the browser's console showed, or an uncaught error, and on which page. */
export interface ConsoleProblem {
  /** The console route (`#/vms/web1`) the tab was on, and which tab (admin, read-only). */
  page: string;
  kind: string;
  text: string;
}

/** Axe's findings as `axe.run` returns them (only what the tests read). */
interface AxeViolation {
  id: string;
  impact?: string | null;
  help: string;
  nodes: { target: unknown[] }[];
}

/** A violation of impact serious or critical, one line: `color-contrast: ... at .a, .b`. */
export type AxeFinding = string;

/**
 * One Chromium for the whole test file; each `tab(label)` is a fresh context (its own session
 * storage: one signed-in user each) with one page, whose console problems and write requests
 * are recorded under that label.
 */
export class ConsoleBrowser {
  readonly problems: ConsoleProblem[] = [];
  /** Requests other than GET/HEAD that each tab sent (`POST /api/v1/...`), by tab label. */
  readonly writes = new Map<string, string[]>();
  private contexts: BrowserContext[] = [];

  private constructor(
    private readonly browser: Browser,
    readonly baseUrl: string,
  ) {}

  static async launch(baseUrl: string): Promise<ConsoleBrowser> {
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
      timeout: 60_000,
    });
    return new ConsoleBrowser(browser, baseUrl);
  }

  /** A new tab (fresh context, laptop size) whose problems are recorded under `label`. */
  async tab(label: string): Promise<Page> {
    const context = await this.browser.newContext({ viewport: LAPTOP, baseURL: this.baseUrl });
    this.contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    const where = () => `${label} ${new URL(page.url()).hash || '#/'}`;
    page.on('console', (message) => {
      const kind = message.type();
      if (kind !== 'error' && kind !== 'warning') return;
      const at = message.location().url;
      this.problems.push({ page: where(), kind, text: `${message.text()}${at ? ` (${at})` : ''}` });
    });
    page.on('pageerror', (error) =>
      this.problems.push({ page: where(), kind: 'uncaught', text: error.stack ?? error.message }),
    );
    this.writes.set(label, []);
    page.on('request', (request) => {
      if (!['GET', 'HEAD'].includes(request.method()))
        this.writes.get(label)?.push(`${request.method()} ${new URL(request.url()).pathname}`);
    });
    return page;
  }

  /** The problems recorded on pages whose label starts with `prefix` (all without one). */
  problemsOn(prefix = ''): ConsoleProblem[] {
    return this.problems.filter((p) => p.page.startsWith(prefix));
  }

  async close(): Promise<void> {
    for (const context of this.contexts) await context.close().catch(() => undefined);
    await this.browser.close();
  }
}

/** Problems as lines for an assertion message. */
export const describeProblems = (problems: ConsoleProblem[]): string =>
  problems.map((p) => `  ${p.page} [${p.kind}] ${p.text}`).join('\n');

/** Signs in on the sign-in form with `token` as a user does; resolves once the Fabric page shows. */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.goto('/');
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await settled(page, 'Fabric');
}

/**
 * Waits until the page's one h1 is `heading` and nothing on it is loading any more (no
 * `Loading …` status, nothing aria-busy).
 */
export async function settled(page: Page, heading: string | RegExp, timeout = 30_000): Promise<void> {
  await page.getByRole('heading', { level: 1, name: heading }).waitFor({ timeout });
  // Locators, not waitForFunction: a string predicate is eval'd in the page, which the
  // console's CSP (no 'unsafe-eval') rightly refuses.
  await page.locator('.state.loading, [aria-busy="true"]').first().waitFor({ state: 'detached', timeout });
}

/** Goes to a section by its link in the Sections navigation, as a user does. */
export async function openSection(page: Page, link: string, heading: string | RegExp): Promise<void> {
  await page
    .getByRole('navigation', { name: 'Sections' })
    .getByRole('link', { name: link, exact: true })
    .click();
  await settled(page, heading);
}

/**
 * axe-core on the page as it shows now (WCAG 2 A/AA and best practices): the violations of
 * impact serious or critical, one line each with the elements they were found on.
 */
export async function axeFindings(page: Page): Promise<AxeFinding[]> {
  if (!(await page.evaluate('typeof window.axe === "object"'))) await page.evaluate(axe.source);
  const violations = (await page.evaluate(
    `axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations)`,
  )) as AxeViolation[];
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map(
      (v) =>
        `${v.id} (${v.impact}): ${v.help} at ${v.nodes
          .map((n) => n.target.map(String).join(' '))
          .join(', ')}`,
    );
}

/**
 * A screenshot of the whole page under SCREENSHOT_DIR as `<name>.png` (at the tab's size), or at
 * `size` as `<name>-<width>x<height>.png` (the tab is put back to its size afterwards).
 */
export async function screenshot(
  page: Page,
  name: string,
  size?: { width: number; height: number },
): Promise<string> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, size ? `${name}-${size.width}x${size.height}.png` : `${name}.png`);
  const before = page.viewportSize();
  if (size) await page.setViewportSize(size);
  try {
    await page.screenshot({ path: file, fullPage: true });
  } finally {
    if (size && before) await page.setViewportSize(before);
  }
  return file;
}

/**
 * Buttons, menu items and submit inputs on the page (not a table's sort headers): each one's
 * accessible name and, where it differs, its visible text (an `Edit` button named `Thresholds
 * of …` is still an edit).
 */
const ACTION_NAMES = `[...document.querySelectorAll('button, [role="button"], [role="menuitem"], input[type="submit"]')]
  .filter((el) => !el.closest('th') && el.getClientRects().length > 0)
  .map((el) => {
    const by = el.getAttribute('aria-labelledby');
    const labelled = by ? by.split(' ').map((id) => document.getElementById(id)?.textContent ?? '').join(' ') : '';
    const text = (el.value || el.textContent || '').replace(/\\s+/g, ' ').trim();
    const name = (el.getAttribute('aria-label') || labelled || text).replace(/\\s+/g, ' ').trim();
    return name === text ? [name] : [name, text];
  })`;

/**
 * The write actions a page offers: buttons and menu items whose name starts with a verb that
 * changes something (move, start, delete, apply, insert, save …). A read-only token must see none.
 */
export async function writeActions(page: Page): Promise<string[]> {
  const names = (await page.evaluate(ACTION_NAMES)) as string[][];
  const verbs =
    /^(move|start|shut ?down|stop|restart|reboot|delete|remove|apply|dismiss|insert|eject|cancel|save|create|add|edit|set|change|update|probe|renew|reconcile|clean|pin|unpin|exclude|include|enable|disable|throttle|retry|confirm)\b/i;
  return names.filter((both) => both.some((n) => verbs.test(n))).map((both) => both.join(' / '));
}
