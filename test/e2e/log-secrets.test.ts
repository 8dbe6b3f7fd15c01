/**
 * No secret query value in the spawned proxy's log: Jupyter's token and
 * _xsrf, and whatever --log-mask-params names, on HTTP and WebSocket lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import WebSocket from 'ws';
import { MASK, sessionTag } from '../../src/log.js';
import { cookie, request } from '../helpers/client.js';
import { upstreamFor } from '../helpers/upstream.js';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import type { LogLine } from '../helpers/logs.js';
import { startSpawnedProxy } from '../helpers/spawned-proxy.js';

const SESSION = 'c0ffee0123456789abcdef0123456789';
// Each secret is unique, so finding any of them anywhere in the output is a leak.
const SECRETS = {
  labToken: 'labtoken5ecret1',
  kernelToken: 'kerneltoken5ecret2',
  refusedToken: 'refusedtoken5ecret3',
  xsrf: '2|5ecret4|xsrf|1700000000',
  apiKey: 'apikey5ecret5',
};

async function openAndClose(port: number, path: string, session: string): Promise<void> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: cookie(session), handshakeTimeout: 5000 });
  await once(ws, 'message');
  ws.close();
  await once(ws, 'close');
}

/** A WebSocket handshake for a session the map does not hold: the proxy's answer status. */
async function refused(port: number, path: string): Promise<number> {
  const headers = { ...cookie('no-such-session'), connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' };
  return (await request(port, { path, headers })).status;
}

test('--verbose request and WebSocket lines mask token, _xsrf and --log-mask-params values in Jupyter URLs', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const jupyter = await upstreamFor(t, 'jupyter');
  const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
  map.addSession(SESSION, '127.0.0.1', jupyter.port);
  const { port, proc } = await startSpawnedProxy(t, map.path, ['--verbose', '--log-mask-params', 'api_key']);

  const lab = `/user/x/lab?token=${SECRETS.labToken}`;
  assert.equal((await request(port, { path: lab, headers: cookie(SESSION) })).status, 200);
  const kernel = `/api/kernels/4f3c2b1a-0000-4000-8000-000000000001/channels?session_id=9e8d7c6b&token=${SECRETS.kernelToken}`;
  await openAndClose(port, kernel, SESSION);
  assert.equal(await refused(port, `/api/kernels/k2/channels?session_id=s2&token=${SECRETS.refusedToken}`), 404);
  const login = `/login?next=%2Ftree&_xsrf=${encodeURIComponent(SECRETS.xsrf)}`;
  const post = await request(port, { method: 'POST', path: login, headers: { ...cookie(SESSION), 'content-type': 'application/x-www-form-urlencoded' }, body: 'password=' });
  assert.equal(post.status, 200);
  assert.equal((await request(port, { path: `/api/datasets?api_key=${SECRETS.apiKey}&page=2`, headers: cookie(SESSION) })).status, 200);

  const byPath = (prefix: string, msg: string): Promise<LogLine> =>
    proc.logs.waitFor((l) => l.msg === msg && String(l.path).startsWith(prefix), 5000);
  assert.equal((await byPath('/user/x/lab', 'request')).path, `/user/x/lab?token=${MASK}`);
  const ws = await byPath('/api/kernels/4f3c', 'websocket closed');
  assert.equal(ws.path, `/api/kernels/4f3c2b1a-0000-4000-8000-000000000001/channels?session_id=9e8d7c6b&token=${MASK}`);
  assert.equal((await byPath('/api/kernels/k2', 'request refused: no session mapped')).path, `/api/kernels/k2/channels?session_id=s2&token=${MASK}`);
  const loginLine = await byPath('/login', 'request');
  assert.equal(loginLine.path, `/login?next=%2Ftree&_xsrf=${MASK}`);
  assert.equal(loginLine.session, sessionTag(SESSION));
  assert.equal((await byPath('/api/datasets', 'request')).path, `/api/datasets?api_key=${MASK}&page=2`);

  // The container itself got every value unchanged: only the log masks.
  assert.ok(jupyter.seen.some((s) => s.url === lab));
  const output = proc.stdout + proc.stderr;
  for (const secret of [...Object.values(SECRETS), encodeURIComponent(SECRETS.xsrf), SESSION]) {
    assert.ok(!output.includes(secret), `${secret} is not in the log`);
  }
});
