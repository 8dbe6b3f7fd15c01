/**
 * A real Jupyter Notebook server (Debian's `jupyter-notebook`) as an
 * Interactive Tool behind the README's nginx path route and the `gx-it-proxy`
 * bin, with `requires_path_in_url` true, as Galaxy's Jupyter tool runs it:
 * started with the entry point path as its base URL. The tree page, the
 * contents API and a kernel executing code over its WebSocket channel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from '../helpers/client.js';
import { tempDir } from '../helpers/galaxy-map.js';
import { IT_PREFIX, saveAndWait, startItProxy } from '../helpers/it-proxy.js';
import { NOTEBOOK_FILE, executeInKernel, startJupyter } from '../helpers/jupyter.js';
import { startNginx } from '../helpers/nginx.js';
import { freePort } from '../helpers/ports.js';
import { adapt, readmeBlock } from '../helpers/readme.js';

const DOMAIN = 'galaxy.example.org';
const EP = { key: '24q1dbzrknq1v', token: '1a1p13jnahscj' };

test('Jupyter Notebook behind nginx → gx-it-proxy by path (requires_path_in_url): tree page, contents API, a kernel runs code over its WebSocket', { timeout: 180_000 }, async (t) => {
  const tmp = tempDir('gie-jupyter-it-');
  t.after(() => tmp.remove());
  const base = `${IT_PREFIX}/${EP.key}/${EP.token}/`;
  const jupyter = await startJupyter(t, tmp.dir, base);
  if (jupyter === undefined) return;
  const proxy = await startItProxy(t, [], 'gx-it-proxy');
  await saveAndWait(proxy, [{ ...EP, host: '127.0.0.1', port: jupyter.port, requiresPathInUrl: true }]);
  const port = await freePort();
  let conf = readmeBlock('nginx', '# Interactive Tools by name:');
  conf = adapt(conf, 'listen 443 ssl;', `listen 127.0.0.1:${port};`);
  conf = adapt(conf, 'http://127.0.0.1:4002', `http://127.0.0.1:${proxy.port}`);
  if (!(await startNginx(t, tmp.dir, conf, port))) return;

  // The browser's view: Galaxy's host, its origin on every WebSocket.
  const host = DOMAIN;
  const auth = { host, authorization: `token ${jupyter.token}` };

  const tree = await request(port, { path: `${base}tree?token=${jupyter.token}`, headers: { host }, timeoutMs: 30_000 });
  assert.equal(tree.status, 200, tree.body.slice(0, 500));
  assert.match(tree.body, /<title>Home Page - Select or create a notebook<\/title>/);
  assert.ok(tree.body.includes(`data-base-url="${base}"`), 'Jupyter serves under the entry point path');

  const file = await request(port, { path: `${base}api/contents/${NOTEBOOK_FILE.name}?content=1`, headers: auth, timeoutMs: 30_000 });
  assert.equal(file.status, 200, file.body);
  const model = JSON.parse(file.body) as { name: string; type: string; content: string };
  assert.deepEqual({ name: model.name, type: model.type, content: model.content }, { name: NOTEBOOK_FILE.name, type: 'file', content: NOTEBOOK_FILE.content });
  const created = await request(port, { method: 'POST', path: `${base}api/contents`, headers: { ...auth, 'content-type': 'application/json' }, body: '{"type":"notebook"}', timeoutMs: 30_000 });
  assert.equal(created.status, 201, created.body);
  assert.equal((JSON.parse(created.body) as { type: string }).type, 'notebook');

  const kernel = await request(port, { method: 'POST', path: `${base}api/kernels`, headers: { ...auth, 'content-type': 'application/json' }, body: '{"name":"python3"}', timeoutMs: 30_000 });
  assert.equal(kernel.status, 201, kernel.body);
  const { id } = JSON.parse(kernel.body) as { id: string };
  // As a browser does: the login cookie the tree page set, no token in the
  // URL. Jupyter then checks the WebSocket's Origin against the Host it got,
  // which works only because nginx and the proxy pass the user's Host on.
  const login = (tree.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]).join('; ');
  assert.match(login, /^username-/);
  const channels = `ws://127.0.0.1:${port}${base}api/kernels/${id}/channels?session_id=galaxy-test`;
  const run = await executeInKernel(channels, 'import os\nprint(6 * 7, os.getpid() > 0)', { host, origin: `https://${host}`, cookie: login }, 60_000);
  assert.deepEqual(run, { status: 'ok', stdout: '42 True\n' });
  await assert.rejects(executeInKernel(channels, 'print(1)', { host, origin: 'https://evil.example.net', cookie: login }, 10_000), /refused: 403/, 'a foreign Origin is refused by Jupyter itself');

  const deleted = await request(port, { method: 'DELETE', path: `${base}api/kernels/${id}`, headers: auth, timeoutMs: 30_000 });
  assert.equal(deleted.status, 204, deleted.body);
  // Without the entry point's token nothing reaches Jupyter.
  assert.equal((await request(port, { path: `${IT_PREFIX}/${EP.key}/wrongtoken000/tree`, headers: { host } })).status, 404);
});
