import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WebSocket from 'ws';
import { rawExchange, request } from '../helpers/client.js';
import { IT_PREFIX as PREFIX, saveAndWait, startItProxy, type ItProxy } from '../helpers/it-proxy.js';
import { upstreamFor, type Seen, type Upstream } from '../helpers/upstream.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';

// Interactive Tools routing through the spawned CLI (lib/main.js, the path
// Galaxy and gravity run), with a gxitproxy map written by Galaxy ≥ 24.2's
// writer after the proxy started, and real HTTP/WebSocket containers.

function seen(body: string): Seen {
  return JSON.parse(body) as Seen;
}

async function setup(t: TestContext, args: string[] = []): Promise<{ proxy: ItProxy; strip: Upstream; keep: Upstream; header: Upstream }> {
  const strip = await upstreamFor(t, 'strip');
  const keep = await upstreamFor(t, 'keep');
  const header = await upstreamFor(t, 'header');
  const proxy = await startItProxy(t, args);
  await saveAndWait(proxy, [
    { key: 'kstrip', token: 'tstrip', host: '127.0.0.1', port: strip.port },
    { key: 'kkeep', token: 'tkeep', host: '127.0.0.1', port: keep.port, requiresPathInUrl: true },
    { key: 'kheader', token: 'theader', host: '127.0.0.1', port: header.port, requiresPathInHeaderNamed: 'X-My-Header' },
  ]);
  return { proxy, strip, keep, header };
}

test('the start line says Interactive Tools routing is in force, before the map exists', async (t) => {
  const proxy = await startItProxy(t);
  const line = await proxy.proc.started();
  assert.equal(line.routing, 'interactive tools: path /interactivetool/ep, then host');
  assert.equal(line.pathPrefix, PREFIX);
});

test('path routing over HTTP: strip, keep and the path header, query kept, Host passed through, CORS echoed', async (t) => {
  const { proxy } = await setup(t);
  const cases: [string, string, string][] = [
    [`${PREFIX}/kstrip/tstrip/a/b?c=d`, 'strip', '/a/b?c=d'],
    [`${PREFIX}/kstrip/tstrip`, 'strip', '/'],
    [`${PREFIX}/kstrip/tstrip?x=1`, 'strip', '/?x=1'],
    [`${PREFIX}/kstrip/tstrip//a//b%2F?q=//`, 'strip', '//a//b%2F?q=//'],
    [`${PREFIX}/kkeep/tkeep/tree?x=%2F`, 'keep', `${PREFIX}/kkeep/tkeep/tree?x=%2F`],
    [`${PREFIX}/kheader/theader/api`, 'header', '/api'],
  ];
  for (const [path, upstream, url] of cases) {
    const r = await request(proxy.port, { path, headers: { host: 'galaxy.example.org', origin: 'https://galaxy.example.org' } });
    assert.equal(r.status, 200, path);
    const s = seen(r.body);
    assert.equal(s.upstream, upstream, path);
    assert.equal(s.url, url, path);
    assert.equal(s.headers.host, 'galaxy.example.org', 'Host passed through');
    assert.equal(r.headers['access-control-allow-origin'], 'https://galaxy.example.org');
    assert.equal(r.headers['access-control-allow-credentials'], 'true');
  }
  // The header: <prefix>/<key>/<token>, the client's own of that name in any case replaced.
  const r = await request(proxy.port, { path: `${PREFIX}/kheader/theader/`, headers: { 'x-MY-header': '/spoofed', 'x-interactive-tool-host': 'evil' } });
  const s = seen(r.body);
  assert.equal(s.headers['x-my-header'], `${PREFIX}/kheader/theader`);
  assert.deepEqual(s.rawHeaders.filter((_, i) => i % 2 === 0 && s.rawHeaders[i]?.toLowerCase() === 'x-my-header'), ['X-My-Header']);
  assert.equal(s.headers['x-interactive-tool-host'], undefined, 'client x-interactive-tool-* headers never reach a container');
});

/** Client-sent headers a container must never get: the prefix in any case, including a forward mode's two. */
const SPOOFED = { 'x-interactive-tool-host': 'evil', 'X-Interactive-Tool-Port': '1', 'x-INTERACTIVE-tool-anything': 'x' };

/** The names of the `x-interactive-tool-*` headers among raw headers (name, value, name, value…). */
function toolHeaders(rawHeaders: string[]): string[] {
  return rawHeaders.filter((name, i) => i % 2 === 0 && name.toLowerCase().startsWith('x-interactive-tool-'));
}

test("a plain row (no header set by the route, no forward mode): the client's x-interactive-tool-* headers never reach the container, by path, by Host or over WebSocket", async (t) => {
  // The unit test calls applyEntryPointRoute itself, and the spoof check above uses a route that sets a header:
  // this one holds what route() returns for a row that sets none (checked against dropping the rewrite there).
  const { proxy, strip } = await setup(t);
  for (const [what, options] of [
    ['by path', { path: `${PREFIX}/kstrip/tstrip/api`, headers: SPOOFED }],
    ['by host', { path: '/api', headers: { ...SPOOFED, host: 'kstrip-tstrip.ep.interactivetool.galaxy.example.org' } }],
  ] as const) {
    const r = await request(proxy.port, options);
    assert.equal(r.status, 200, what);
    const s = seen(r.body);
    assert.equal(s.upstream, 'strip', what);
    assert.equal(s.url, '/api', what);
    assert.deepEqual(toolHeaders(s.rawHeaders), [], what);
  }
  const upgrades: string[][] = [];
  strip.wss.on('connection', (_ws, req) => upgrades.push(req.rawHeaders));
  for (const [path, host] of [[`${PREFIX}/kstrip/tstrip/ws`, undefined], ['/ws', 'kstrip-tstrip.ep.interactivetool.example.org']] as const) {
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}${path}`, { headers: { ...SPOOFED, ...(host === undefined ? {} : { host }) }, handshakeTimeout: 3000 });
    t.after(() => ws.terminate());
    await once(ws, 'message');
  }
  assert.equal(upgrades.length, 2);
  for (const raw of upgrades) assert.deepEqual(toolHeaders(raw), []);
});

test('host routing over HTTP: <key>-<token>.<anything>, the request target unchanged', async (t) => {
  const { proxy } = await setup(t);
  for (const host of ['kstrip-tstrip.ep.interactivetool.galaxy.example.org', 'kstrip-tstrip.localhost:4002']) {
    const r = await request(proxy.port, { path: '/x//y?z=%2F', headers: { host } });
    assert.equal(r.status, 200, host);
    assert.equal(seen(r.body).url, '/x//y?z=%2F');
    assert.equal(seen(r.body).headers.host, host);
  }
  // A keep-alive connection carrying several entry points routes each request by its own URL.
  const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const a = await request(proxy.port, { path: `${PREFIX}/kkeep/tkeep/`, agent });
  const b = await request(proxy.port, { path: '/', headers: { host: 'kstrip-tstrip.x' }, agent });
  assert.deepEqual([seen(a.body).upstream, seen(b.body).upstream], ['keep', 'strip']);
});

test('WebSocket by path and by host, piped both ways, with the same rewrites', async (t) => {
  const { proxy } = await setup(t);
  const open = async (path: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; hello: { upstream: string; url: string } }> => {
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}${path}`, { headers, handshakeTimeout: 3000 });
    t.after(() => ws.terminate());
    const [data] = (await once(ws, 'message')) as [Buffer];
    return { ws, hello: JSON.parse(data.toString()) as { upstream: string; url: string } };
  };
  const byPath = await open(`${PREFIX}/kstrip/tstrip/api/kernels/1/channels?session_id=s`);
  assert.deepEqual(byPath.hello, { upstream: 'strip', url: '/api/kernels/1/channels?session_id=s' });
  const kept = await open(`${PREFIX}/kkeep/tkeep/api/kernels/1/channels`);
  assert.deepEqual(kept.hello, { upstream: 'keep', url: `${PREFIX}/kkeep/tkeep/api/kernels/1/channels` });
  const byHost = await open('/terminals/websocket/1', { host: 'kheader-theader.ep.interactivetool.example.org' });
  assert.deepEqual(byHost.hello, { upstream: 'header', url: '/terminals/websocket/1' });
  const big = Buffer.alloc(128 * 1024, 7);
  byPath.ws.send(big);
  const [echo] = (await once(byPath.ws, 'message')) as [Buffer];
  assert.equal(Buffer.compare(echo, big), 0);
});

test('Galaxy re-saving an entry point (new token, new port) and removing it take effect', async (t) => {
  const { proxy, strip, keep } = await setup(t);
  let from = proxy.proc.logs.lines.length;
  proxy.map.save({ key: 'kstrip', token: 'tnew', host: '127.0.0.1', port: keep.port });
  await proxy.proc.logs.waitFor((l) => l.msg === MAP_LOG.reloaded, 10_000, from);
  assert.equal((await request(proxy.port, { path: `${PREFIX}/kstrip/tstrip/` })).status, 404, 'the old token stops working');
  assert.equal(seen((await request(proxy.port, { path: `${PREFIX}/kstrip/tnew/` })).body).upstream, 'keep');
  from = proxy.proc.logs.lines.length;
  proxy.map.remove('kstrip');
  await proxy.proc.logs.waitFor((l) => l.msg === MAP_LOG.reloaded, 10_000, from);
  assert.equal((await request(proxy.port, { path: `${PREFIX}/kstrip/tnew/` })).status, 404);
  assert.ok(strip.seen.length === 0 || strip.seen.every((s) => s.url !== '/'), 'nothing reached the removed container afterwards');
});

test('raw upgrade bytes: a refused upgrade gets a status line, never a bare body', async (t) => {
  const { proxy } = await setup(t);
  const upgrade = (path: string, host = 'x'): string =>
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
  const unknown = await rawExchange(proxy.port, upgrade(`${PREFIX}/nokey/t/`));
  assert.match(unknown.text, /^HTTP\/1\.1 404 /);
  const wrongToken = await rawExchange(proxy.port, upgrade('/', 'kstrip-wrong.x'));
  assert.match(wrongToken.text, /^HTTP\/1\.1 404 /);
});
