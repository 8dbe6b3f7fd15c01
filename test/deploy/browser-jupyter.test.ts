/**
 * A user's view: Debian's Chromium, headless, opens Galaxy's Jupyter through
 * nginx (the README's locations) → the spawned proxy (lib/main.js) → a real
 * Jupyter Notebook server, and runs a cell on the kernel over the WebSocket.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ANSWERS } from '../../src/http/answers.js';
import { MASK } from '../../src/log.js';
import { BrowserSteps, CHROMIUM, launchChromium } from '../helpers/browser.js';
import { readmeNginxLocations, startNginx } from '../helpers/front-server.js';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { JUPYTER_BASE_URL, JUPYTER_NOTEBOOK, startJupyter } from '../helpers/jupyter.js';
import { freePort } from '../helpers/ports.js';
import { startSpawnedProxy } from '../helpers/spawned-proxy.js';
import { requireTool } from '../helpers/tools.js';

/** The page's Jupyter globals, as the notebook's scripts define them. */
declare const window: {
  Jupyter?: {
    notebook_list?: unknown;
    notebook?: { kernel?: { is_connected(): boolean } | null };
  };
};

test('Chromium runs a Jupyter cell through nginx and the proxy; an unknown session gets the 404 text', { timeout: 180_000 }, async (t) => {
  const nginx = requireTool(t, 'nginx', 'apt-get install nginx-light');
  const chromium = requireTool(t, 'chromium', 'apt-get install chromium');
  const jupyter = requireTool(t, JUPYTER_NOTEBOOK, 'apt-get install jupyter-notebook');
  if (nginx === undefined || chromium === undefined || jupyter === undefined) return;
  assert.equal(chromium, CHROMIUM, 'the test drives Debian\'s /usr/bin/chromium');

  const tmp = tempDir('gie-browser-');
  t.after(() => tmp.remove());
  const token = randomBytes(16).toString('hex');
  const session = randomBytes(16).toString('hex');
  const steps = new BrowserSteps(t);

  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const notebookServer = await steps.run('start Jupyter', () => undefined, () => startJupyter(t, jupyter, tmp.dir, { token, origin }));
  const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
  map.addSession(session, '127.0.0.1', notebookServer.port);
  const proxy = await steps.run('start the proxy', () => undefined, () => startSpawnedProxy(t, map.path, ['--verbose']));
  await steps.run('start nginx', () => undefined, () => startNginx(t, nginx, tmp.dir, [{ port, locations: readmeNginxLocations(proxy.port) }]));
  const context = await steps.run('launch Chromium', () => undefined, () => launchChromium(t, tmp.dir));
  await context.addCookies([{ name: 'galaxysession', value: session, url: origin }]);

  // Every response the pages get, to show that no script or style failed to load.
  const failed: string[] = [];
  context.on('response', (response) => {
    if (response.status() >= 400) failed.push(`${response.status()} ${response.request().method()} ${response.url()}`);
  });
  context.on('requestfailed', (request) => failed.push(`${request.failure()?.errorText ?? 'failed'} ${request.url()}`));

  const tree = context.pages()[0] ?? (await context.newPage());
  let notebook: Page | undefined;
  await steps.run('notebook list loads with its scripts', () => tree, async () => {
    const response = await tree.goto(`${origin}${JUPYTER_BASE_URL}tree?token=${token}`, { waitUntil: 'load', timeout: 30_000 });
    assert.equal(response?.status(), 200);
    // Jupyter's own scripts (require.js modules) built the page: the list object exists.
    await tree.waitForFunction(() => window.Jupyter?.notebook_list !== undefined, undefined, { timeout: 30_000 });
    await tree.locator('#new-dropdown-button').waitFor({ state: 'visible', timeout: 30_000 });
  });

  notebook = await steps.run('a new Python 3 notebook opens', () => tree, async () => {
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
  // Closed before the cookie changes, so its polling does not meet the 404s that follow.
  await notebook.close();
  // The kernel's channels went through the proxy as a WebSocket, which the page's close ended.
  await proxy.proc.logs.waitFor((l) => l.msg === 'websocket closed' && /\/api\/kernels\/[^/]+\/channels/.test(String(l.path)), 10_000);

  await steps.run('an unknown session shows the proxy\'s 404 text', () => tree, async () => {
    await context.clearCookies();
    await context.addCookies([{ name: 'galaxysession', value: 'not-a-session', url: origin }]);
    const response = await tree.goto(`${origin}${JUPYTER_BASE_URL}tree`, { waitUntil: 'load', timeout: 10_000 });
    assert.equal(response?.status(), 404);
    assert.equal((await tree.locator('body').innerText({ timeout: 5000 })).trim(), ANSWERS['no-session'].body.trim());
  });

  // The Jupyter token and the session cookie never reach the proxy's --verbose log.
  const logged = proxy.proc.stdout + proxy.proc.stderr;
  assert.ok(proxy.proc.logs.lines.some((l) => l.msg === 'request' && l.path === `${JUPYTER_BASE_URL}tree?token=${MASK}`), 'the page request is logged, token masked');
  assert.ok(!logged.includes(token), 'the Jupyter token is not logged');
  assert.ok(!logged.includes(session), 'the session cookie is not logged');
  t.diagnostic(`steps: ${steps.timings.map((s) => `${s.step} ${s.ms} ms`).join('; ')}`);
});
