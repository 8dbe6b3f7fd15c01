/**
 * The double proxy of INTERACTIVE-TOOLS.md §5.5–5.6, with spawned processes:
 * Galaxy's side reads the map and runs in forward mode (`--forwardIP/
 * --forwardPort`), the remote side has no map (header mode) and takes the
 * container from `x-interactive-tool-host/-port`. HTTP and WebSocket, by path
 * and by name, end to end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { spawnProxy } from '../helpers/child.js';
import { request } from '../helpers/client.js';
import { IT_PREFIX, saveAndWait, startItProxy } from '../helpers/it-proxy.js';
import { freePort } from '../helpers/ports.js';
import { startUpstream, type Seen } from '../helpers/upstream.js';

const EP = { key: '24q1dbzrknq1v', token: '1a1p13jnahscj' };
const KEEP = { key: '326unmiv5sanl', token: '0b0x7kq2mzt3c' };

test('double proxy: forward mode → header mode → container, HTTP and WebSocket by path and by name; unknown keys stop at the first proxy', { timeout: 60_000 }, async (t) => {
  const container = await startUpstream('jupyter');
  t.after(() => container.close());
  // The remote half: no map, only the container's address may be named.
  const remotePort = await freePort();
  const remote = spawnProxy(['--ip', '127.0.0.1', '--port', String(remotePort), '--verbose', '--header-mode-allow', `127.0.0.1:${container.port}`], { bin: 'gx-it-proxy' });
  t.after(() => remote.kill());
  await remote.started(10_000);
  // Galaxy's half: the map, every request forwarded to the remote half.
  const galaxySide = await startItProxy(t, ['--forwardIP', '127.0.0.1', '--forwardPort', String(remotePort), '--verbose'], 'gx-it-proxy');
  await saveAndWait(galaxySide, [
    { ...EP, host: '127.0.0.1', port: container.port, requiresPathInUrl: false },
    { ...KEEP, host: '127.0.0.1', port: container.port, requiresPathInUrl: true },
  ]);
  const port = galaxySide.port;
  const name = `${EP.key}-${EP.token}.ep.interactivetool.galaxy.example.org`;

  // HTTP by path: the first proxy strips the prefix, the second connects to the container.
  const before = remote.logs.lines.length;
  const byPath = await request(port, { path: `${IT_PREFIX}/${EP.key}/${EP.token}/api/contents?x=1`, headers: { host: 'galaxy.example.org', 'x-interactive-tool-host': 'evil.example.net' } });
  assert.equal(byPath.status, 200, byPath.body);
  const seen = JSON.parse(byPath.body) as Seen;
  assert.equal(seen.url, '/api/contents?x=1');
  assert.equal(seen.headers.host, 'galaxy.example.org', 'Host passed through both proxies');
  assert.deepEqual(Object.keys(seen.headers).filter((h) => h.startsWith('x-interactive-tool-')), [], 'the target headers end at the remote proxy');
  // The remote half did route it (its request line), from the headers the first half set.
  const line = await remote.logs.waitFor((l) => l.msg === 'request' && String(l.path).startsWith('/api/contents'), 5000, before);
  assert.equal(line.target, `127.0.0.1:${container.port}`);
  assert.equal(line.status, 200);

  // HTTP by name, and the kept prefix.
  const byName = JSON.parse((await request(port, { path: '/tree', headers: { host: name } })).body) as Seen;
  assert.equal(byName.url, '/tree');
  assert.equal(byName.headers.host, name);
  const kept = JSON.parse((await request(port, { path: `${IT_PREFIX}/${KEEP.key}/${KEEP.token}/lab?y=2` })).body) as Seen;
  assert.equal(kept.url, `${IT_PREFIX}/${KEEP.key}/${KEEP.token}/lab?y=2`);
  // A body goes all the way.
  const post = await request(port, { method: 'POST', path: `${IT_PREFIX}/${EP.key}/${EP.token}/upload`, body: Buffer.alloc(256 * 1024, 7) });
  assert.equal((JSON.parse(post.body) as Seen).bodyBytes, 256 * 1024);

  // WebSocket by path and by name: upgrade through both, messages both ways.
  for (const [url, headers, expected] of [
    [`ws://127.0.0.1:${port}${IT_PREFIX}/${EP.key}/${EP.token}/api/kernels/k1/channels?session_id=s`, {}, '/api/kernels/k1/channels?session_id=s'],
    [`ws://127.0.0.1:${port}/terminals/websocket/1`, { host: name }, '/terminals/websocket/1'],
  ] as const) {
    const ws = new WebSocket(url, { headers, handshakeTimeout: 5000 });
    try {
      const [hello] = (await once(ws, 'message')) as [Buffer];
      assert.equal((JSON.parse(hello.toString()) as { url: string }).url, expected);
      ws.send(Buffer.alloc(100_000, 1));
      const [echo] = (await once(ws, 'message')) as [Buffer];
      assert.equal(echo.length, 100_000);
    } finally {
      ws.terminate();
    }
  }

  // Unknown key or wrong token in forward mode: a 404 from the first proxy, nothing forwarded.
  const remoteLines = remote.logs.lines.length;
  const seenBefore = container.seen.length;
  assert.equal((await request(port, { path: `${IT_PREFIX}/nosuchkey0000/${EP.token}/` })).status, 404);
  assert.equal((await request(port, { path: '/', headers: { host: `${EP.key}-wrongtoken000.ep.interactivetool.galaxy.example.org` } })).status, 404);
  const ws = new WebSocket(`ws://127.0.0.1:${port}${IT_PREFIX}/nosuchkey0000/${EP.token}/ws`, { handshakeTimeout: 5000 });
  ws.on('error', () => {});
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage];
  assert.equal(res.statusCode, 404);
  ws.terminate();
  assert.equal(container.seen.length, seenBefore);
  assert.deepEqual(remote.logs.lines.slice(remoteLines).filter((l) => l.msg === 'request'), [], 'the remote half heard nothing of them');

  // The remote half refuses a target off its allow-list and a request without a target.
  assert.equal((await request(remotePort, { headers: { 'x-interactive-tool-host': '127.0.0.1', 'x-interactive-tool-port': String(remotePort) } })).status, 404);
  assert.equal((await request(remotePort, {})).status, 400);
  assert.equal(remote.child.exitCode, null);
  assert.equal(galaxySide.proc.child.exitCode, null);
});
