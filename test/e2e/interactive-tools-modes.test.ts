import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WebSocket from 'ws';
import { rawExchange, request } from '../helpers/client.js';
import { spawnProxy } from '../helpers/child.js';
import { upstreamFor } from '../helpers/fixture.js';
import { IT_PREFIX as PREFIX, saveAndWait, startItProxy } from '../helpers/it-proxy.js';
import { freePort } from '../helpers/ports.js';
import type { Seen } from '../helpers/upstream.js';

// Forward mode (--forwardIP/--forwardPort) and header mode (no --sessions):
// the two halves of gx-it-proxy's double proxy, each a spawned CLI.

function seen(body: string): Seen {
  return JSON.parse(body) as Seen;
}

/** The remote half: the gx-it-proxy bin without --sessions (header mode). */
async function startHeaderMode(t: import('node:test').TestContext, args: string[] = []): Promise<{ port: number; proc: ReturnType<typeof spawnProxy> }> {
  const port = await freePort();
  const proc = spawnProxy(['--ip', '127.0.0.1', '--port', String(port), ...args], { bin: 'gx-it-proxy' });
  t.after(() => proc.kill());
  await proc.started(10_000);
  return { port, proc };
}

test('header mode: the start line says it is an open relay unless an allow-list is given', async (t) => {
  const open = await startHeaderMode(t);
  const line = await open.proc.started();
  assert.equal(line.routing, 'interactive tools: header mode (open relay)');
  assert.ok(open.proc.logs.lines.some((l) => l.level === 'warn' && /open relay/.test(l.msg)), 'a warning about the open relay');
  const restricted = await startHeaderMode(t, ['--header-mode-allow', '127.0.0.1']);
  const restrictedLine = await restricted.proc.started();
  assert.equal(restrictedLine.routing, 'interactive tools: header mode');
  assert.deepEqual(restrictedLine.headerModeAllow, ['127.0.0.1']);
  assert.ok(!restricted.proc.logs.lines.some((l) => /open relay/.test(l.msg)));
});

test('header mode routes by x-interactive-tool-host/-port (both forms), consumes them, refuses what it cannot use', async (t) => {
  const container = await upstreamFor(t, 'c');
  const other = await upstreamFor(t, 'other');
  const remote = await startHeaderMode(t, ['--header-mode-allow', `127.0.0.1:${container.port}`]);
  const two = await request(remote.port, { path: '/a?b', headers: { 'x-interactive-tool-host': '127.0.0.1', 'x-interactive-tool-port': String(container.port) } });
  assert.equal(two.status, 200);
  assert.equal(seen(two.body).url, '/a?b');
  assert.equal(seen(two.body).headers['x-interactive-tool-host'], undefined);
  const one = await request(remote.port, { path: '/', headers: { 'x-interactive-tool-host': `127.0.0.1:${container.port}` } });
  assert.equal(seen(one.body).upstream, 'c');
  // Not on the allow-list: refused without a connection.
  const refused = await request(remote.port, { headers: { 'x-interactive-tool-host': `127.0.0.1:${other.port}` } });
  assert.equal(refused.status, 404);
  assert.equal(other.seen.length, 0);
  // §7.4: without the header, a 400 for HTTP and as a status line on an upgrade; the process lives.
  assert.equal((await request(remote.port, { path: '/' })).status, 400);
  const http10 = await rawExchange(remote.port, 'GET / HTTP/1.0\r\n\r\n');
  assert.match(http10.text, /^HTTP\/1\.1 400 /);
  const upgrade = await rawExchange(
    remote.port,
    'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  assert.match(upgrade.text, /^HTTP\/1\.1 400 /);
  assert.equal((await request(remote.port, { headers: { 'x-interactive-tool-host': 'no-port-here' } })).status, 400);
  assert.equal(remote.proc.child.exitCode, null);
});

test('double proxy: forward mode → header mode → container, HTTP and WebSocket, path stripped and header set on the Galaxy side', async (t) => {
  const container = await upstreamFor(t, 'c');
  const remote = await startHeaderMode(t, ['--header-mode-allow', '127.0.0.0/8']);
  const local = await startItProxy(t, ['--forwardIP', '127.0.0.1', '--forwardPort', String(remote.port)]);
  await saveAndWait(local, [{ key: 'kfwd', token: 'tfwd', host: '127.0.0.1', port: container.port, requiresPathInHeaderNamed: 'X-Base' }]);
  const r = await request(local.port, { path: `${PREFIX}/kfwd/tfwd/lab?x=1`, headers: { host: 'galaxy.example.org', 'x-interactive-tool-host': 'spoof' } });
  assert.equal(r.status, 200);
  const s = seen(r.body);
  assert.equal(s.url, '/lab?x=1');
  assert.equal(s.headers.host, 'galaxy.example.org');
  assert.equal(s.headers['x-base'], `${PREFIX}/kfwd/tfwd`);
  assert.equal(s.headers['x-interactive-tool-host'], undefined, 'consumed by the remote half');
  const ws = new WebSocket(`ws://127.0.0.1:${local.port}${PREFIX}/kfwd/tfwd/api/kernels/1/channels`, { handshakeTimeout: 3000 });
  t.after(() => ws.terminate());
  const [hello] = (await once(ws, 'message')) as [Buffer];
  assert.deepEqual(JSON.parse(hello.toString()), { upstream: 'c', url: '/api/kernels/1/channels' });
  ws.send('ping');
  const [echo] = (await once(ws, 'message')) as [Buffer];
  assert.equal(echo.toString(), 'ping');
  // §7.3: an unknown key in forward mode is a fast 404, HTTP and upgrade; nothing reaches the remote half.
  const before = container.seen.length;
  assert.equal((await request(local.port, { path: `${PREFIX}/nokey/tfwd/` })).status, 404);
  const upgrade = await rawExchange(
    local.port,
    `GET ${PREFIX}/nokey/t/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
  );
  assert.match(upgrade.text, /^HTTP\/1\.1 404 /);
  assert.equal(container.seen.length, before);
  assert.equal(local.proc.child.exitCode, null);
});
