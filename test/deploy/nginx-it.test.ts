/**
 * The README's nginx configuration for Interactive Tools (Galaxy's admin
 * guide: a wildcard `server_name *.interactivetool.<domain>` and the
 * `location ~* ^/(interactivetool/.+)$` path route, both with `Host $host`
 * and the upgrade headers) run for real in front of the `gx-it-proxy` bin.
 * No DNS: the subdomain is a Host header on a loopback connection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { request } from '../helpers/client.js';
import { tempDir } from '../helpers/galaxy-map.js';
import { IT_PREFIX, saveAndWait, startItProxy } from '../helpers/it-proxy.js';
import { startNginx } from '../helpers/nginx.js';
import { freePort } from '../helpers/ports.js';
import { adapt, readmeBlock } from '../helpers/readme.js';
import { startUpstream, type Seen } from '../helpers/upstream.js';

const DOMAIN = 'galaxy.example.org';
/** Entry points as Galaxy ≥ 23.1 writes them: strip the prefix, keep it, and the header variant. */
const STRIP = { key: '24q1dbzrknq1v', token: '1a1p13jnahscj' };
const KEEP = { key: '326unmiv5sanl', token: '0b0x7kq2mzt3c' };
const HEADER = { key: '4kk1w0e3rq7az', token: 'p9c1s8e2m0f4d' };

/** The README's nginx block on 127.0.0.1:`port`, proxy and Galaxy on the given ports. */
function readmeNginx(port: number, proxyPort: number, galaxyPort: number): string {
  let conf = readmeBlock('nginx', '# Interactive Tools by name:');
  conf = adapt(conf, 'listen 443 ssl;', `listen 127.0.0.1:${port};`);
  conf = adapt(conf, 'galaxy.example.org', DOMAIN);
  conf = adapt(conf, 'http://127.0.0.1:4002', `http://127.0.0.1:${proxyPort}`);
  return adapt(conf, 'http://127.0.0.1:8080', `http://127.0.0.1:${galaxyPort}`);
}

/** Opens a WebSocket through nginx with `host`; the container's hello (the URL it saw), then one echo. */
async function webSocket(port: number, host: string, path: string): Promise<{ url: string } | { status: number; body: string }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { host }, handshakeTimeout: 5000 });
  ws.on('error', () => {});
  // The container's hello can come in the same read as the 101: listen before 'open'.
  const hello = new Promise<Buffer>((resolve) => ws.once('message', resolve));
  try {
    const opened = once(ws, 'open').then(() => 'open' as const);
    const refused = once(ws, 'unexpected-response').then(([, res]) => res as IncomingMessage);
    const first = await Promise.race([opened, refused]);
    if (first !== 'open') {
      let body = '';
      for await (const chunk of first) body += String(chunk);
      return { status: first.statusCode ?? 0, body };
    }
    const greeting = await hello;
    const echo = new Promise<Buffer>((resolve) => ws.once('message', resolve));
    ws.send('ping');
    assert.equal((await echo).toString(), 'ping');
    return { url: (JSON.parse(greeting.toString()) as { url: string }).url };
  } finally {
    ws.terminate();
  }
}

test('nginx with the README\'s IT configuration: entry points by name and by path, HTTP and WebSocket, through the gx-it-proxy bin', { timeout: 60_000 }, async (t) => {
  const tmp = tempDir('gie-nginx-it-');
  t.after(() => tmp.remove());
  const container = await startUpstream('jupyter');
  const galaxy = await startUpstream('galaxy');
  t.after(async () => {
    await container.close();
    await galaxy.close();
  });
  const proxy = await startItProxy(t, [], 'gx-it-proxy');
  const at = { host: '127.0.0.1', port: container.port };
  await saveAndWait(proxy, [
    { ...STRIP, ...at, requiresPathInUrl: false },
    { ...KEEP, ...at, requiresPathInUrl: true },
    { ...HEADER, ...at, requiresPathInUrl: false, requiresPathInHeaderNamed: 'X-My-Header' },
  ]);
  const port = await freePort();
  if (!(await startNginx(t, tmp.dir, readmeNginx(port, proxy.port, galaxy.port), port))) return;

  const get = async (host: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; seen: Seen | undefined; body: string }> => {
    const r = await request(port, { path, headers: { host, ...headers } });
    return { status: r.status, body: r.body, seen: r.status === 200 ? (JSON.parse(r.body) as Seen) : undefined };
  };
  const byName = (ep: { key: string; token: string }): string => `${ep.key}-${ep.token}.ep.interactivetool.${DOMAIN}`;
  const path = (ep: { key: string; token: string }, rest: string): string => `${IT_PREFIX}/${ep.key}/${ep.token}/${rest}`;

  // By name: the wildcard server; the Host reaches the container as the user sent it.
  const named = await get(byName(STRIP), '/tree?token=abc');
  assert.equal(named.status, 200, named.body);
  assert.equal(named.seen?.upstream, 'jupyter');
  assert.equal(named.seen?.url, '/tree?token=abc');
  assert.equal(named.seen?.headers.host, byName(STRIP));
  assert.equal(named.seen?.headers['x-real-ip'], '127.0.0.1');

  // By path: Galaxy's server; strip, keep and the header variant.
  const stripped = await get(DOMAIN, path(STRIP, 'api/contents?type=directory'));
  assert.equal(stripped.seen?.url, '/api/contents?type=directory');
  assert.equal(stripped.seen?.headers.host, DOMAIN);
  assert.equal((await get(DOMAIN, path(KEEP, 'lab/tree?x=1'))).seen?.url, path(KEEP, 'lab/tree?x=1'));
  const header = await get(DOMAIN, path(HEADER, 'app/'), { 'x-my-header': '/spoofed' });
  assert.equal(header.seen?.url, '/app/');
  assert.equal(header.seen?.headers['x-my-header'], `${IT_PREFIX}/${HEADER.key}/${HEADER.token}`, 'the proxy\'s value, not the client\'s');
  const post = await request(port, { method: 'POST', path: path(STRIP, 'api/contents'), headers: { host: DOMAIN, 'content-type': 'application/json' }, body: '{"type":"notebook"}' });
  assert.equal((JSON.parse(post.body) as Seen).bodyBytes, 19, 'the request body reaches the container');

  // Everything else on Galaxy's server is Galaxy's.
  assert.equal((await get(DOMAIN, '/api/version')).seen?.upstream, 'galaxy');
  assert.equal((await get(DOMAIN, '/interactivetoolx')).seen?.upstream, 'galaxy');

  // The proxy's refusals come back through nginx as they are.
  const seenBefore = container.seen.length + galaxy.seen.length;
  const unknownName = await get(`nosuchkey0000-1a1p13jnahscj.ep.interactivetool.${DOMAIN}`, '/');
  assert.equal(unknownName.status, 404, unknownName.body);
  const wrongToken = await get(DOMAIN, `${IT_PREFIX}/${STRIP.key}/wrongtoken000/`);
  assert.equal(wrongToken.status, 404, wrongToken.body);
  assert.equal(container.seen.length + galaxy.seen.length, seenBefore, 'nothing unroutable reached a container or Galaxy');

  // WebSocket, both ways: nginx passes the upgrade, the proxy routes it.
  assert.deepEqual(await webSocket(port, byName(STRIP), '/api/kernels/k1/channels?session_id=s1'), { url: '/api/kernels/k1/channels?session_id=s1' });
  assert.deepEqual(await webSocket(port, DOMAIN, path(STRIP, 'api/kernels/k1/channels?session_id=s1')), { url: '/api/kernels/k1/channels?session_id=s1' });
  assert.deepEqual(await webSocket(port, DOMAIN, path(KEEP, 'terminals/websocket/1')), { url: path(KEEP, 'terminals/websocket/1') });
  const refused = await webSocket(port, DOMAIN, `${IT_PREFIX}/${STRIP.key}/wrongtoken000/api/kernels/k1/channels`);
  assert.ok('status' in refused && refused.status === 404, JSON.stringify(refused));
  const refusedByName = await webSocket(port, `nosuchkey0000-x.ep.interactivetool.${DOMAIN}`, '/ws');
  assert.ok('status' in refusedByName && refusedByName.status === 404, JSON.stringify(refusedByName));
});
