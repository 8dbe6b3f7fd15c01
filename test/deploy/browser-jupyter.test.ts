/**
 * A user's view: Debian's Chromium, headless, opens Jupyter through nginx →
 * the spawned proxy → a real Jupyter Notebook server, and runs a cell on the
 * kernel over the WebSocket: as a Galaxy interactive environment (session
 * cookie, the README's nginx locations) and as an Interactive Tool (entry
 * point path, the gx-it-proxy command).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { ANSWERS } from '../../src/http/answers.js';
import { MASK } from '../../src/log.js';
import { BrowserSteps, CHROMIUM, launchChromium } from '../helpers/browser.js';
import { spawnProxy, type ProxyProcess } from '../helpers/spawned-proxy.js';
import { readmeNginxLocations } from '../helpers/front-server.js';
import { startNginx } from '../helpers/nginx.js';
import { SqlAlchemyItWriter } from '../helpers/galaxy-it-map.js';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { startJupyter, type Jupyter } from '../helpers/jupyter.js';
import { freePort } from '../helpers/ports.js';
import { startSpawnedProxy } from '../helpers/spawned-proxy.js';
import { requireTool } from '../helpers/tools.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';

/** The path Galaxy's Jupyter interactive environment is served under, as its container sees it. */
const JUPYTER_BASE_URL = '/galaxy/gie_proxy/jupyter/ipython/';

/** The page's Jupyter globals, as the notebook's scripts define them. */
declare const window: {
  Jupyter?: {
    notebook_list?: unknown;
    notebook?: { kernel?: { is_connected(): boolean } | null };
  };
};

/**
 * Galaxy's nginx location for Interactive Tools served by path (its
 * documentation's, pointed at the proxy): every request under the prefix,
 * WebSockets included, goes to gx-it-proxy.
 */
function interactiveToolLocation(proxyPort: number): string {
  return `    location /interactivetool/ep/ {
      proxy_pass http://127.0.0.1:${proxyPort};
      proxy_redirect off;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 1h;
    }`;
}

/** One nginx server block on 127.0.0.1:`port` holding `locations`. */
function serverBlock(port: number, locations: string): string {
  return `  server {\n    listen 127.0.0.1:${port};\n${locations}\n  }`;
}

interface Setup {
  readonly dir: string;
  readonly steps: BrowserSteps;
  /** nginx's port, and the page's origin on it. */
  readonly port: number;
  readonly origin: string;
}

/** Chromium, a temp dir and nginx's port; skipped (or failed in CI) without the tools. */
async function setUp(t: TestContext): Promise<Setup | undefined> {
  const chromium = requireTool(t, 'chromium', 'apt-get install chromium');
  if (chromium === undefined) return undefined;
  assert.equal(chromium, CHROMIUM, "the test drives Debian's /usr/bin/chromium");
  const tmp = tempDir('gie-browser-');
  t.after(() => tmp.remove());
  const port = await freePort();
  return { dir: tmp.dir, steps: new BrowserSteps(t), port, origin: `http://127.0.0.1:${port}` };
}

/**
 * What the user does: opens the notebook list at `baseUrl` (with the Jupyter
 * token once), opens a new Python 3 notebook from the New menu, waits for its
 * kernel's WebSocket, runs print(6*7) and reads 42. Every page, script and
 * style must answer below 400.
 */
async function runACell(setup: Setup, context: BrowserContext, proxy: ProxyProcess, server: Jupyter, opened?: Page): Promise<Page> {
  const { steps, origin } = setup;
  const { baseUrl, token } = server;
  const failed: string[] = [];
  context.on('response', (response) => {
    if (response.status() >= 400) failed.push(`${response.status()} ${response.request().method()} ${response.url()}`);
  });
  context.on('requestfailed', (request) => failed.push(`${request.failure()?.errorText ?? 'failed'} ${request.url()}`));

  const tree = opened ?? context.pages()[0] ?? (await context.newPage());
  await steps.run('notebook list loads with its scripts', () => tree, async () => {
    // A page already on the notebook list (it turned into it by itself) is not loaded again.
    if (opened === undefined) {
      const response = await tree.goto(`${origin}${baseUrl}tree?token=${token}`, { waitUntil: 'load', timeout: 30_000 });
      assert.equal(response?.status(), 200);
    }
    // Jupyter's own scripts (require.js modules) built the page: the list object exists.
    await tree.waitForFunction(() => window.Jupyter?.notebook_list !== undefined, undefined, { timeout: 30_000 });
    await tree.locator('#new-dropdown-button').waitFor({ state: 'visible', timeout: 30_000 });
  });

  const notebook = await steps.run('a new Python 3 notebook opens', () => tree, async () => {
    await tree.locator('#new-dropdown-button').click();
    const [opened] = await Promise.all([context.waitForEvent('page', { timeout: 30_000 }), tree.locator('#kernel-python3 a').click()]);
    await opened.waitForURL(/\/notebooks\/Untitled.*\.ipynb/, { timeout: 30_000 });
    return opened;
  });

  await steps.run('its kernel connects over the WebSocket', () => notebook, async () => {
    await notebook.waitForFunction(() => window.Jupyter?.notebook?.kernel?.is_connected() === true, undefined, { timeout: 60_000 });
    await notebook.locator('#kernel_indicator_icon.kernel_idle_icon').waitFor({ timeout: 60_000 });
  });

  await steps.run('print(6*7) runs and 42 appears', () => notebook, async () => {
    await notebook.locator('.cell .CodeMirror').first().click();
    await notebook.keyboard.type('print(6*7)');
    await notebook.keyboard.press('Shift+Enter');
    const output = notebook.locator('.output_area pre').first();
    await output.waitFor({ timeout: 30_000 });
    assert.equal((await output.innerText()).trim(), '42');
  });
  assert.deepEqual(failed, [], 'every page, script and style answered');
  // Closed before anything else changes, so its polling meets no refusal.
  await notebook.close();
  // The kernel's channels went through the proxy as a WebSocket, which the page's close ended.
  await proxy.logs.waitFor((l) => l.msg === 'websocket closed' && /\/api\/kernels\/[^/]+\/channels/.test(String(l.path)), 10_000);
  // The page request is logged with Jupyter's token masked; the token is nowhere in the log.
  assert.ok(proxy.logs.lines.some((l) => l.msg === 'request' && String(l.path).endsWith(`tree?token=${MASK}`)), 'the page request is logged, token masked');
  assert.ok(!(proxy.stdout + proxy.stderr).includes(token), 'the Jupyter token is not logged');
  return tree;
}

/** gx-it-proxy started with gravity's command line for gx_it_proxy (plus --verbose), killed in t.after. */
async function startGravityItProxy(t: { after: (fn: () => unknown) => void }, mapPath: string, port: number): Promise<ProxyProcess> {
  const proc = spawnProxy(['--ip', '127.0.0.1', '--port', String(port), '--sessions', mapPath, '--verbose', '--proxyPathPrefix', '/interactivetool/ep'], { bin: 'gx-it-proxy' });
  t.after(() => proc.kill());
  await proc.started(10_000);
  return proc;
}

test('Chromium runs a Jupyter cell through nginx and the proxy by session cookie; an unknown session gets the starting page, a script the 404 text', { timeout: 180_000 }, async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const { steps, dir, port } = setup;
  const session = randomBytes(16).toString('hex');

  const server = await steps.run('start Jupyter', () => undefined, () => startJupyter(t, dir, JUPYTER_BASE_URL, { allowOrigin: setup.origin }));
  if (server === undefined) return;
  const map = new GalaxySqliteWriter(join(dir, 'session_map.sqlite'));
  map.addSession(session, '127.0.0.1', server.port);
  const proxy = await steps.run('start the proxy', () => undefined, () => startSpawnedProxy(t, map.path, ['--verbose']));
  if (!(await steps.run('start nginx', () => undefined, () => startNginx(t, dir, serverBlock(port, readmeNginxLocations(proxy.port)), port)))) return;
  const context = await steps.run('launch Chromium', () => undefined, () => launchChromium(t, dir));
  await context.addCookies([{ name: 'galaxysession', value: session, url: setup.origin }]);

  const tree = await runACell(setup, context, proxy.proc, server);

  await steps.run('an unknown session shows the starting page (a browser; scripts keep the 404 text)', () => tree, async () => {
    await context.clearCookies();
    await context.addCookies([{ name: 'galaxysession', value: 'not-a-session', url: setup.origin }]);
    const response = await tree.goto(`${setup.origin}${JUPYTER_BASE_URL}tree`, { waitUntil: 'load', timeout: 10_000 });
    assert.equal(response?.status(), 503);
    assert.equal(await tree.locator('h1').innerText({ timeout: 5000 }), 'Your tool is starting');
    const api = await tree.evaluate(async (url) => {
      const r = await fetch(url);
      return { status: r.status, text: await r.text() };
    }, `${setup.origin}${JUPYTER_BASE_URL}api/contents`);
    assert.deepEqual(api, { status: 404, text: ANSWERS['no-session'].body });
  });
  assert.ok(!(proxy.proc.stdout + proxy.proc.stderr).includes(session), 'the session cookie is not logged');
  t.diagnostic(`steps: ${steps.timings.map((s) => `${s.step} ${s.ms} ms`).join('; ')}`);
});

test('Chromium runs a Jupyter cell as an Interactive Tool: nginx → gx-it-proxy by entry point path; a wrong token gets the starting page, a script the 404 text', { timeout: 180_000 }, async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const { steps, dir, port } = setup;
  const key = 'kjupyter';
  const entryToken = randomBytes(12).toString('hex');
  // Galaxy's Jupyter tool asks for the path in the URL: it serves under its entry point path.
  const baseUrl = `/interactivetool/ep/${key}/${entryToken}/`;

  const server = await steps.run('start Jupyter', () => undefined, () => startJupyter(t, dir, baseUrl, { allowOrigin: setup.origin }));
  if (server === undefined) return;
  const map = new SqlAlchemyItWriter(join(dir, 'interactivetools_map.sqlite'));
  map.save({ key, token: entryToken, host: '127.0.0.1', port: server.port, requiresPathInUrl: true });
  map.close();
  const proxyPort = await freePort();
  const proxy = await steps.run('start gx-it-proxy', () => undefined, () => startGravityItProxy(t, map.path, proxyPort));
  if (!(await steps.run('start nginx', () => undefined, () => startNginx(t, dir, serverBlock(port, interactiveToolLocation(proxyPort)), port)))) return;
  const context = await steps.run('launch Chromium', () => undefined, () => launchChromium(t, dir));

  const tree = await runACell(setup, context, proxy, server);

  await steps.run('a wrong token shows the starting page, as an unknown key does (a browser; scripts keep the 404 text)', () => tree, async () => {
    const response = await tree.goto(`${setup.origin}/interactivetool/ep/${key}/not-the-token/tree`, { waitUntil: 'load', timeout: 10_000 });
    assert.equal(response?.status(), 503);
    assert.equal(await tree.locator('h1').innerText({ timeout: 5000 }), 'Your tool is starting');
    const api = await tree.evaluate(async (url) => {
      const r = await fetch(url);
      return { status: r.status, text: await r.text() };
    }, `${setup.origin}/interactivetool/ep/${key}/not-the-token/api/contents`);
    assert.deepEqual(api, { status: 404, text: ANSWERS['wrong-token'].body });
  });
  assert.ok(!(proxy.stdout + proxy.stderr).includes(entryToken), 'the entry point token is not logged');
  t.diagnostic(`steps: ${steps.timings.map((s) => `${s.step} ${s.ms} ms`).join('; ')}`);
});

/**
 * Where the pages' screenshots go: `$GIE_TEST_OUTPUT/browser-pages/`, or
 * `test-output/browser-pages/` in the checkout (kept after the test, for
 * people and for CI to collect).
 */
const SHOTS = join(process.env.GIE_TEST_OUTPUT ?? fileURLToPath(new URL('../../test-output', import.meta.url)), 'browser-pages');

test('Chromium opens a tool before Galaxy wrote its row: the starting page turns into Jupyter by itself, a cell prints 42; once the row is gone a reload shows the stopped page', { timeout: 240_000 }, async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const { steps, dir, port, origin } = setup;
  if (requireTool(t, 'jupyter-notebook', 'apt-get install jupyter-notebook') === undefined) return;
  mkdirSync(SHOTS, { recursive: true });
  const key = 'kstarting';
  const entryToken = randomBytes(12).toString('hex');
  const baseUrl = `/interactivetool/ep/${key}/${entryToken}/`;
  const jupyterPort = await freePort();
  const jupyterToken = randomBytes(16).toString('hex');
  const url = `${origin}${baseUrl}tree?token=${jupyterToken}`;
  // Galaxy ≥ 24.2 creates the map with its first row: the proxy starts before it exists.
  const map = new SqlAlchemyItWriter(join(dir, 'interactivetools_map.sqlite'));
  t.after(() => map.close());
  const proxyPort = await freePort();
  const proxy = await steps.run('start gx-it-proxy (no map yet)', () => undefined, () => startGravityItProxy(t, map.path, proxyPort));
  if (!(await steps.run('start nginx', () => undefined, () => startNginx(t, dir, serverBlock(port, interactiveToolLocation(proxyPort)), port)))) return;
  const context = await steps.run('launch Chromium', () => undefined, () => launchChromium(t, dir));
  const page = context.pages()[0] ?? (await context.newPage());

  await steps.run("the tool's address before its row: the starting page", () => page, async () => {
    const response = await page.goto(url, { waitUntil: 'load', timeout: 10_000 });
    assert.equal(response?.status(), 503);
    assert.equal(response?.headers()['retry-after'], '1');
    assert.equal(await page.locator('h1').innerText({ timeout: 5000 }), 'Your tool is starting');
    assert.equal(await page.locator('a').getAttribute('href'), '/');
    await page.screenshot({ path: join(SHOTS, '1-starting.png'), fullPage: true });
  });

  await steps.run('Galaxy writes the row (its container not listening yet)', () => page, async () => {
    const from = proxy.logs.lines.length;
    map.save({ key, token: entryToken, host: '127.0.0.1', port: jupyterPort, requiresPathInUrl: true });
    await proxy.logs.waitFor((l) => l.msg === MAP_LOG.reloaded && l.sessions === 1, 10_000, from);
  });

  const server = await steps.run('Jupyter starts', () => page, () => startJupyter(t, dir, baseUrl, { allowOrigin: origin, port: jupyterPort, token: jupyterToken }));
  if (server === undefined) return;

  await steps.run('the page turns into Jupyter by itself', () => page, async () => {
    // Nobody touches the page: its own retry finds the tool and reloads.
    await page.waitForFunction(() => window.Jupyter?.notebook_list !== undefined, undefined, { timeout: 60_000 });
    // The same tab, on the tool's notebook list (Jupyter drops ?token= once it has logged the browser in).
    assert.equal(page.url().split('?')[0], `${origin}${baseUrl}tree`);
    await page.locator('#new-dropdown-button').waitFor({ state: 'visible', timeout: 30_000 });
    await page.screenshot({ path: join(SHOTS, '2-jupyter.png'), fullPage: true });
  });

  const tree = await runACell(setup, context, proxy, server, page);

  await steps.run('Galaxy removes the row', () => tree, async () => {
    const from = proxy.logs.lines.length;
    map.remove(key);
    await proxy.logs.waitFor((l) => l.msg === MAP_LOG.reloaded && l.sessions === 0, 10_000, from);
  });

  await steps.run('a reload shows the stopped page with the Galaxy link', () => tree, async () => {
    const response = await tree.reload({ waitUntil: 'load', timeout: 10_000 });
    assert.equal(response?.status(), 404);
    assert.equal(await tree.locator('h1').innerText({ timeout: 5000 }), 'This tool has stopped');
    assert.equal(await tree.locator('a').innerText(), 'Back to Galaxy');
    assert.equal(await tree.locator('a').getAttribute('href'), '/');
    assert.ok(!(await tree.content()).includes(entryToken), 'the token is not in the page');
    await tree.screenshot({ path: join(SHOTS, '3-stopped.png'), fullPage: true });
  });
  assert.ok(!(proxy.stdout + proxy.stderr).includes(entryToken), 'the entry point token is not logged');
  t.diagnostic(`screenshots: ${SHOTS}`);
  t.diagnostic(`steps: ${steps.timings.map((s) => `${s.step} ${s.ms} ms`).join('; ')}`);
});

test('Chromium: the starting page gives up after --starting-page-timeout and shows the unreachable page with the Galaxy link', { timeout: 60_000 }, async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const { steps, dir } = setup;
  mkdirSync(SHOTS, { recursive: true });
  const map = new SqlAlchemyItWriter(join(dir, 'interactivetools_map.sqlite'));
  t.after(() => map.close());
  const proxyPort = await freePort();
  const proxy = await steps.run('start gx-it-proxy with --starting-page-timeout 3000', () => undefined, async () => {
    const args = ['--ip', '127.0.0.1', '--port', String(proxyPort), '--sessions', map.path, '--proxyPathPrefix', '/interactivetool/ep', '--starting-page-timeout', '3000'];
    const proc = spawnProxy([...args, '--galaxy-url', 'https://usegalaxy.example.org/'], { bin: 'gx-it-proxy' });
    t.after(() => proc.kill());
    await proc.started(10_000);
    return proc;
  });
  const context = await steps.run('launch Chromium', () => undefined, () => launchChromium(t, dir));
  const page = context.pages()[0] ?? (await context.newPage());
  const blocked: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') blocked.push(message.text());
  });
  await steps.run('a tool that never comes: the starting page', () => page, async () => {
    const response = await page.goto(`http://127.0.0.1:${proxyPort}/interactivetool/ep/knever/tnever/`, { waitUntil: 'load', timeout: 10_000 });
    assert.equal(response?.status(), 503);
  });
  await steps.run('after the time-out, the unreachable page', () => page, async () => {
    await page.locator('h1', { hasText: 'Your tool could not be reached' }).waitFor({ timeout: 20_000 });
    assert.equal(await page.title(), 'Your tool could not be reached');
    assert.equal(await page.locator('a').getAttribute('href'), 'https://usegalaxy.example.org/');
    await page.screenshot({ path: join(SHOTS, '4-unreachable.png'), fullPage: true });
  });
  // The page's own tries were answered 404 (a script's request: plain text); the CSP blocked nothing.
  assert.deepEqual(blocked.filter((text) => /Content Security Policy/i.test(text)), []);
  assert.equal(proxy.child.exitCode, null);
  t.diagnostic(`steps: ${steps.timings.map((s) => `${s.step} ${s.ms} ms`).join('; ')}`);
});
