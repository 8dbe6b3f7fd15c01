import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import WebSocket from 'ws';
import { ANSWERS } from '../src/http/answers.js';
import { createLogger } from '../src/log.js';
import { sessionTag } from '../src/log.js';
import type { ProxyOptions } from '../src/cli/options.js';
import { rawExchange, request } from './helpers/client.js';
import { mappedProxy, upstreamFor } from './helpers/fixture.js';
import { LogCapture } from './helpers/logs.js';
import { freePort } from './helpers/ports.js';
import type { Handler, Seen } from './helpers/upstream.js';

/** Session cookie values shaped like Galaxy's (long hex). */
const ALICE = 'a1'.repeat(16);
const BOB = 'b0'.repeat(16);

/** A proxy routing ALICE to container `a`, with an `other` container that nothing maps to. */
async function setup(t: TestContext, options: Partial<ProxyOptions> = {}, handler?: Handler) {
  const a = await upstreamFor(t, 'a', handler);
  const other = await upstreamFor(t, 'other');
  const proxy = await mappedProxy(t, { [ALICE]: a.port }, options);
  return { a, other, map: proxy.map, proxy, port: proxy.port };
}

const seenBy = (body: string): Seen => JSON.parse(body) as Seen;

test('no open proxy: absolute-form targets, CONNECT and foreign Host headers reach only the mapped container', async (t) => {
  const { a, other, port } = await setup(t);
  const elsewhere = `127.0.0.1:${other.port}`;
  const withAlice = `Cookie: galaxysession=${ALICE}\r\n`;

  // Absolute form: the mapped container gets the path, nothing goes elsewhere.
  const absolute = await rawExchange(port, `GET http://${elsewhere}/x/y?z=1 HTTP/1.1\r\nHost: ${elsewhere}\r\n${withAlice}Connection: close\r\n\r\n`);
  assert.match(absolute.text, /^HTTP\/1\.1 200 /);
  const seen = seenBy(absolute.text.slice(absolute.text.indexOf('\r\n\r\n') + 4));
  assert.equal(seen.upstream, 'a');
  assert.equal(seen.url, '/x/y?z=1');
  // ... and without a mapped cookie, nobody is contacted.
  assert.match((await rawExchange(port, `GET http://${elsewhere}/ HTTP/1.1\r\nHost: ${elsewhere}\r\nConnection: close\r\n\r\n`)).text, /^HTTP\/1\.1 404 /);

  // CONNECT: refused, whatever the cookie.
  const connect = await rawExchange(port, `CONNECT ${elsewhere} HTTP/1.1\r\nHost: ${elsewhere}\r\n${withAlice}\r\n`);
  assert.match(connect.text, /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
  assert.match(connect.text, /\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n/);
  assert.ok(connect.closedByServer);

  // A Host header naming another machine is passed on, never connected to.
  const host = await request(port, { headers: { cookie: `galaxysession=${ALICE}`, host: elsewhere } });
  assert.equal(seenBy(host.body).upstream, 'a');
  assert.equal(seenBy(host.body).headers.host, elsewhere);

  // WebSocket upgrades in absolute form go to the mapped container too.
  const ws = await rawExchange(
    port,
    `GET http://${elsewhere}/ws HTTP/1.1\r\nHost: ${elsewhere}\r\n${withAlice}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    500,
  );
  assert.match(ws.text, /^HTTP\/1\.1 101 /);
  assert.ok(ws.text.includes('"upstream":"a"') && ws.text.includes('"url":"/ws"'), ws.text);

  // Request targets that are neither a path nor absolute form are refused.
  for (const target of ['*', 'other-host:80']) {
    assert.match((await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: x\r\n${withAlice}\r\n`)).text, /^HTTP\/1\.1 400 /, target);
  }
  const options = await rawExchange(port, `OPTIONS * HTTP/1.1\r\nHost: x\r\n${withAlice}Connection: close\r\n\r\n`);
  assert.ok(options.text.includes('"url":"*"'), 'OPTIONS * is passed on');

  assert.equal(other.connectionCount, 0, 'the unmapped machine was contacted');
  assert.ok(a.connectionCount > 0);
});

test('no session cookie value in any log line or error body, at debug level, whatever the outcome', async (t) => {
  const { map, proxy, port } = await setup(t, { verbose: true, proxyTimeoutMs: 200 }, (req, _res) => req.url === '/silent');
  const dead = await freePort();
  const reloaded = proxy.logs.next('session map reloaded');
  map.addSession(BOB, '127.0.0.1', dead);
  await reloaded;
  const secrets = [ALICE, BOB, 'c2'.repeat(16)];
  const bodies: string[] = [];
  const keep = (r: { body: string }) => bodies.push(r.body);
  for (const secret of secrets) {
    const headers = { cookie: `other=1; galaxysession=${secret}`, origin: 'https://galaxy.example.org' };
    keep(await request(port, { path: '/ok?x=1', headers })); // 200, 502 or 404
    keep(await request(port, { path: '/silent', headers })); // 504 for ALICE
    keep(await rawExchange(port, `GET / HTTP/1.1\r\nCookie: galaxysession=${secret}\r\nBad Header: 1\r\n\r\n`).then((r) => ({ body: r.text })));
    keep(await rawExchange(port, `GET / HTTP/1.1\r\nCookie: galaxysession=${secret}\r\nX: ${'x'.repeat(20_000)}\r\n\r\n`).then((r) => ({ body: r.text })));
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { cookie: `galaxysession=${secret}` } });
    ws.on('error', () => {});
    await Promise.race([once(ws, 'open'), once(ws, 'unexpected-response')]);
    ws.terminate();
  }
  await proxy.logs.waitFor((l) => l.msg === 'websocket closed');
  const statuses = proxy.logs.withMsg('request').map((l) => l.status);
  for (const status of [200, 404, 502, 504]) assert.ok(statuses.includes(status), `no ${status} among ${statuses.join(',')}`);
  const everything = JSON.stringify(proxy.logs.lines);
  for (const secret of secrets) {
    assert.ok(!everything.includes(secret), 'a cookie value reached the log');
    assert.ok(!everything.includes(secret.slice(0, 12)), 'a cookie prefix long enough to guess from reached the log');
  }
  // Request lines name the session by its tag.
  const tagged = proxy.logs.withMsg('request').filter((l) => l.session === sessionTag(ALICE));
  assert.ok(tagged.length >= 2);
  assert.equal(tagged[0]?.path, '/ok?x=1');
  for (const body of bodies) {
    if (body.startsWith('{')) continue; // the echo container's own answer
    for (const secret of secrets) assert.ok(!body.includes(secret), `a cookie value in a response: ${body.slice(0, 80)}`);
    const proxyAnswer = Object.values(ANSWERS).map((a) => a.body).find((b) => b !== '' && body.endsWith(b));
    assert.ok(proxyAnswer !== undefined || /^HTTP\/1\.1 (400|431) [^\r]*\r\n(.+\r\n)*\r\n$/.test(body), `unexpected body: ${body.slice(0, 200)}`);
    assert.ok(!body.includes(String(dead)) && !/\bat .+:\d+:\d+/.test(body), 'an address or a stack trace in a response');
  }
});

test('the logger keeps no request bytes, headers or objects of a logged error', () => {
  const logs = new LogCapture();
  const log = createLogger({ verbose: true, destination: logs.stream });
  const secret = 'd3'.repeat(16);
  const parseError = Object.assign(new Error('Parse Error: Invalid header value char'), {
    code: 'HPE_INVALID_HEADER_TOKEN',
    bytesParsed: 42,
    rawPacket: Buffer.from(`GET / HTTP/1.1\r\nCookie: galaxysession=${secret}\r\n`),
  });
  const withRequest = Object.assign(new Error('upstream failed', { cause: parseError }), {
    code: 'ESOMETHING',
    headers: { cookie: `galaxysession=${secret}` },
    req: { headers: { cookie: secret } },
  });
  log.error({ err: withRequest }, 'proxy error');
  log.error({ err: { cookie: secret } }, 'a rejection with a plain object');
  const text = JSON.stringify(logs.lines);
  assert.ok(!text.includes(secret), text);
  assert.ok(!text.includes(Buffer.from(secret).toJSON().data.slice(0, 8).join(',')), 'raw bytes of the cookie were logged');
  const err = logs.lines[0]?.err as Record<string, unknown> & { cause: Record<string, unknown> };
  assert.equal(err.code, 'ESOMETHING');
  assert.equal(err.message, 'upstream failed');
  assert.equal(err.cause.code, 'HPE_INVALID_HEADER_TOKEN');
  assert.equal(err.cause.bytesParsed, 42);
  assert.match(String(err.stack), /upstream failed/);
});

test('hop-by-hop headers of a container answer are not forwarded; the client connection follows the client', async (t) => {
  const { port, a } = await setup(t, {}, (_req, res) => {
    res.writeHead(200, {
      connection: 'close, x-private',
      'x-private': 'hop',
      'keep-alive': 'timeout=1',
      'proxy-authenticate': 'Basic',
      trailer: 'x-checksum',
      upgrade: 'h2c',
      'transfer-encoding': 'chunked',
      'x-end-to-end': 'kept',
    });
    res.end('chunked body');
    return true;
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const first = await request(port, { headers: { cookie: `galaxysession=${ALICE}` }, agent });
  assert.equal(first.body, 'chunked body');
  assert.equal(first.headers['x-end-to-end'], 'kept');
  for (const name of ['x-private', 'proxy-authenticate', 'trailer', 'upgrade']) assert.equal(first.headers[name], undefined, name);
  assert.equal(first.headers.connection, 'keep-alive', 'the container closing its connection does not close the client');
  assert.equal(first.headers['keep-alive'], 'timeout=5', "the proxy's own keep-alive time-out, not the container's");
  const second = await request(port, { headers: { cookie: `galaxysession=${ALICE}` }, agent });
  assert.equal(second.status, 200);
  assert.equal(Object.values(agent.freeSockets).flat().length, 1, 'both requests used one client connection');
  assert.equal(a.connectionCount, 2, 'the container asked to close each of its connections');
  // A client asking to close gets its connection closed.
  const closing = await rawExchange(port, `GET / HTTP/1.1\r\nHost: x\r\nCookie: galaxysession=${ALICE}\r\nConnection: close\r\n\r\n`);
  assert.match(closing.text, /\r\nconnection: close\r\n/i);
  assert.ok(closing.closedByServer);
});

test('a container refusing a WebSocket upgrade with a chunked answer reaches the client intact', async (t) => {
  const refuser = http.createServer();
  refuser.on('upgrade', (_req, socket: net.Socket) => {
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nnope!\r\n0\r\n\r\n');
  });
  refuser.listen(0, '127.0.0.1');
  await once(refuser, 'listening');
  t.after(() => refuser.close());
  const { map, proxy, port } = await setup(t);
  const reloaded = proxy.logs.next('session map reloaded');
  map.addSession(BOB, '127.0.0.1', (refuser.address() as net.AddressInfo).port);
  await reloaded;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { cookie: `galaxysession=${BOB}` } });
  ws.on('error', () => {});
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, http.IncomingMessage];
  let body = '';
  res.on('data', (c: Buffer) => (body += c.toString('utf8')));
  await once(res, 'end');
  assert.equal(res.statusCode, 403);
  assert.equal(body, 'nope!');
  ws.terminate();
});

test('X-Forwarded-*: passed on untouched without --xfwd, appended to with --xfwd', async (t) => {
  const sent = { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'galaxy.example.org' };
  const plain = await setup(t);
  const untouched = seenBy((await request(plain.port, { headers: { cookie: `galaxysession=${ALICE}`, ...sent } })).body).headers;
  assert.deepEqual([untouched['x-forwarded-for'], untouched['x-forwarded-proto'], untouched['x-forwarded-host']], Object.values(sent));
  const none = seenBy((await request(plain.port, { headers: { cookie: `galaxysession=${ALICE}` } })).body).headers;
  assert.equal(Object.keys(none).filter((h) => h.startsWith('x-forwarded-')).length, 0, 'nothing added without --xfwd');

  const fwd = await setup(t, { xfwd: true });
  const appended = seenBy((await request(fwd.port, { headers: { cookie: `galaxysession=${ALICE}`, host: 'h.example:8800', ...sent } })).body).headers;
  assert.equal(appended['x-forwarded-for'], '203.0.113.7,127.0.0.1');
  assert.equal(appended['x-forwarded-proto'], 'https,http');
  assert.equal(appended['x-forwarded-host'], 'galaxy.example.org', 'a host set upstream is kept');
  const fresh = seenBy((await request(fwd.port, { headers: { cookie: `galaxysession=${ALICE}`, host: 'h.example:8800' } })).body).headers;
  assert.deepEqual([fresh['x-forwarded-for'], fresh['x-forwarded-proto'], fresh['x-forwarded-host'], fresh['x-forwarded-port']], ['127.0.0.1', 'http', 'h.example:8800', '8800']);
  // WebSocket upgrades get them too.
  const upgradeHeaders = await new Promise<http.IncomingHttpHeaders>((resolve) => {
    fwd.a.wss.once('connection', (_ws, req) => resolve(req.headers));
    void rawExchange(
      fwd.port,
      `GET /ws HTTP/1.1\r\nHost: x\r\nCookie: galaxysession=${ALICE}\r\nX-Forwarded-For: 203.0.113.7\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      300,
    );
  });
  assert.equal(upgradeHeaders['x-forwarded-for'], '203.0.113.7,127.0.0.1');
  assert.equal(upgradeHeaders['x-forwarded-proto'], 'ws');
});

test('CORS: --cors-origin grants only the listed origins and withholds the container grants from others', async (t) => {
  const allowed = 'https://galaxy.example.org:8080';
  const { port } = await setup(t, { corsOrigins: [allowed] }, (_req, res) => {
    res.writeHead(200, { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'x-anything', vary: 'Accept-Encoding' });
    res.end('ok');
    return true;
  });
  const granted = await request(port, { headers: { cookie: `galaxysession=${ALICE}`, origin: allowed } });
  assert.equal(granted.headers['access-control-allow-origin'], allowed);
  assert.equal(granted.headers['access-control-allow-credentials'], 'true');
  assert.equal(granted.headers.vary, 'Accept-Encoding, Origin');
  const refused = await request(port, { headers: { cookie: `galaxysession=${ALICE}`, origin: 'https://evil.example' } });
  assert.equal(refused.status, 200, 'the request itself is served; only the browser is told not to share it');
  assert.equal(Object.keys(refused.headers).filter((h) => h.startsWith('access-control-')).length, 0);
  const refused404 = await request(port, { headers: { origin: 'https://evil.example' } });
  assert.equal(refused404.status, 404);
  assert.equal(refused404.headers['access-control-allow-origin'], undefined);
  const granted404 = await request(port, { headers: { origin: allowed } });
  assert.equal(granted404.headers['access-control-allow-origin'], allowed);
  assert.equal(granted404.headers.vary, 'Origin');
  // Without --cors-origin: the legacy echo for any origin.
  const legacy = await setup(t, {});
  const echoed = await request(legacy.port, { headers: { cookie: `galaxysession=${ALICE}`, origin: 'https://evil.example' } });
  assert.equal(echoed.headers['access-control-allow-origin'], 'https://evil.example');
  assert.equal(echoed.headers['access-control-allow-credentials'], 'true');
});
