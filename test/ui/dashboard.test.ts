/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core) against a real server and a real
 * `aipd device` child process: log in, see the device, run a task and watch it appear and complete, open its
 * timeline, cancel a running task, type `echo hi` in the terminal and see `hi`, upload a file and see it listed.
 * Each step saves a screenshot under .vitest/screenshots/ (README's pictures come from there).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, TEST_KEY } from '../helpers/aip-server.js';
import { RawClient } from '../helpers/raw-client.js';
import { startDevice, type DeviceProc } from '../remote/helpers.js';

/** What the page's own globals look like from here (these run inside the browser). */
declare global {
  var sessionStorage: { getItem(k: string): string | null };
  var localStorage: { readonly length: number };
}

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(import.meta.dirname, '../../.vitest/screenshots');
const DEVICE = 'ui-dev';

let server: Awaited<ReturnType<typeof startTestServer>>;
let base: string;
let device: DeviceProc;
let requester: RawClient;
let browser: Browser;
let page: Page;
let root: string;

const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

const plan = (actions: { tool_name: string; parameters: Record<string, unknown> }[]) =>
  JSON.stringify({
    task: 'ui test',
    steps: actions.map((a) => ({ actions: [{ ...a, tool_type: 'action' }] })),
  });

function runTask(id: string, request: string): void {
  requester.send({
    type: 'task',
    status: 'continue',
    client_type: 'constellation',
    client_id: 'ui@req',
    target_id: DEVICE,
    request,
    task_name: id,
    session_id: id,
  });
}

beforeAll(async () => {
  // The page under test is the current source: build it (ui/ → dist/ui/) as `npm run build` does.
  await build({ configFile: join(import.meta.dirname, '../../ui/vite.config.ts'), logLevel: 'error' });
  mkdirSync(SHOTS, { recursive: true });
  root = mkdtempSync(join(tmpdir(), 'aipd-ui-'));
  server = await startTestServer({ commandTimeoutMs: 60_000 });
  base = `http://127.0.0.1:${server.port}`;
  device = await startDevice(base, TEST_KEY, DEVICE, ['--root', root, '--allow-exec', '--platform', 'linux']);
  requester = await RawClient.connect(server.url);
  await requester.register('ui@req', { client_type: 'constellation', target_id: DEVICE });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await requester?.close();
  await device?.stop();
  await server?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('the dashboard at /ui', () => {
  it('logs in with the API key, kept in session storage and never in a URL', async () => {
    const requested: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    await page.goto(`${base}/ui`);
    await page.getByTestId('api-key').fill('wrong-key');
    await page.getByTestId('login').click();
    await expect.poll(() => page.locator('.error').textContent()).toContain('Invalid API key');
    await page.getByTestId('api-key').fill(TEST_KEY);
    await page.getByTestId('login').click();
    await page.getByTestId('nav-devices').waitFor();
    expect(await page.evaluate(() => globalThis.sessionStorage.getItem('aipd.apiKey'))).toBe(TEST_KEY);
    expect(await page.evaluate(() => globalThis.localStorage.length)).toBe(0);
    await shot('login');
    expect(requested.some((u) => u.includes(TEST_KEY))).toBe(false);
  });

  it('shows the device with its role, platform, node and connected time', async () => {
    await page.getByTestId('nav-devices').click();
    const row = page.getByTestId(`device-${DEVICE}`);
    await row.waitFor();
    const cells = await row.locator('td').allTextContents();
    expect(cells.slice(0, 4)).toEqual([DEVICE, 'device', 'linux', server.nodeId]);
    expect(cells[4]).toMatch(/^\d+ (s|min)$/);
    await expect
      .poll(() => page.getByTestId('device-ui@req').locator('td').nth(1).textContent())
      .toBe(`constellation → ${DEVICE}`);
    await shot('devices');
  });

  it('shows a task appear and complete live, and its timeline, events, checkpoint and result', async () => {
    await page.getByTestId('nav-sessions').click();
    await page.getByTestId('sessions').waitFor();
    runTask(
      'ui-t1',
      plan([
        { tool_name: 'wait', parameters: { ms: 1500 } },
        { tool_name: 'echo', parameters: { say: 'done' } },
      ]),
    );
    const row = page.getByTestId('session-ui-t1');
    await expect.poll(() => row.getByTestId('status').textContent(), { timeout: 10_000 }).toBe('active');
    await expect.poll(() => row.getByTestId('status').textContent(), { timeout: 15_000 }).toBe('completed');
    await row.getByRole('link').click();
    await page.getByTestId('session-detail').waitFor();
    await expect
      .poll(() => page.getByTestId('timeline').locator('li b').allTextContents())
      .toEqual(['active', 'completed']);
    await expect.poll(() => page.getByTestId('events').textContent()).toContain('task.ended');
    expect(await page.getByTestId('events').textContent()).toContain('task.commands');
    expect(await page.getByTestId('checkpoint').textContent()).toContain('"aip_steps": 2');
    expect(await page.getByTestId('result').textContent()).toContain('"error": null');
    await shot('session-detail');
  });

  it('cancels a running task from its page', async () => {
    runTask('ui-t2', plan([{ tool_name: 'wait', parameters: { ms: 30_000 } }]));
    await expect.poll(async () => (await server.sessions.get('ui-t2'))?.status).toBe('active');
    await page.goto(`${base}/ui#/sessions/ui-t2`);
    await expect.poll(() => page.getByTestId('detail-status').textContent()).toBe('active');
    await page.getByTestId('cancel').click();
    await expect
      .poll(() => page.getByTestId('detail-status').textContent(), { timeout: 10_000 })
      .toBe('cancelled');
    expect(
      (await requester.next((m) => m.type === 'task_end' && m.session_id === 'ui-t2', 5000, 0)).status,
    ).toBe('failed');
    expect(await page.getByTestId('timeline').locator('li b').allTextContents()).toEqual([
      'active',
      'cancelled',
    ]);
    expect(await page.getByTestId('cancel').isDisabled()).toBe(true);
    await shot('session-cancelled');
  });

  it('runs `echo hi` in a terminal on the device and shows `hi`', async () => {
    await page.getByTestId('nav-terminal').click();
    // The view changes on the hashchange that follows the click: pick the device in this view, not the last one.
    await page.getByRole('heading', { name: 'Terminal' }).waitFor();
    await page.getByTestId('device-picker').selectOption(DEVICE);
    await page.getByTestId('open-terminal').click();
    await expect
      .poll(() => page.getByTestId('terminal-state').textContent(), { timeout: 15_000 })
      .toContain('connected');
    await page.locator('.xterm-helper-textarea').focus();
    await page.keyboard.type('echo hi\n');
    const rows = () => page.locator('.xterm-rows > div').allTextContents();
    await expect.poll(async () => (await rows()).map((l) => l.trim()), { timeout: 10_000 }).toContain('hi');
    await shot('terminal');
  });

  it('uploads a file into a device folder and lists it', async () => {
    await page.getByTestId('nav-files').click();
    // Both the terminal and the files view have a device picker: wait until this one shows.
    await page.getByRole('heading', { name: 'Files' }).waitFor();
    await page.getByTestId('device-picker').selectOption(DEVICE);
    await page.getByTestId('open-files').click();
    await page.getByTestId('files').waitFor();
    await page.getByTestId('upload').setInputFiles({
      name: 'hello.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('hello from the browser\n'),
    });
    const row = page.getByTestId('file-hello.txt');
    await row.waitFor({ timeout: 10_000 });
    expect((await row.locator('td').nth(1).textContent())?.trim()).toBe('23');
    await shot('files');
  });

  it('shows live numbers and sparklines on the overview', async () => {
    await page.getByTestId('nav-overview').click();
    await expect.poll(() => page.getByTestId('n-started').textContent()).toBe('2');
    expect(await page.getByTestId('n-completed').textContent()).toBe('1');
    expect(await page.getByTestId('n-devices').textContent()).toBe('1');
    // a second scrape gives the first point of each sparkline
    await expect
      .poll(() => page.getByTestId('spark-rate').locator('b').textContent(), { timeout: 8000 })
      .toMatch(/^[\d.e-]+ \/s$/);
    await shot('overview');
  });

  it('/docs shows every route in Swagger UI, with the key from this tab’s session storage', async () => {
    const outside: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(base)) outside.push(r.url());
    });
    await page.goto(`${base}/docs`);
    const ops = page.locator('.opblock');
    await expect.poll(() => ops.count(), { timeout: 15_000 }).toBe(server.http.list().length);
    expect(await page.locator('[data-path="/sessions/{id}/execute"]').count()).toBeGreaterThan(0);
    expect(outside).toEqual([]);
    await shot('docs');
  });

  it('serves the built assets from the package, nothing from elsewhere', async () => {
    const html = await (await fetch(`${base}/ui`)).text();
    const srcs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(srcs.length).toBeGreaterThanOrEqual(2);
    for (const s of srcs) expect(s).toMatch(/^\/ui\/assets\//);
  });
});
