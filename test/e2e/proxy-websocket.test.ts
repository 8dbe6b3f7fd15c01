import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WebSocket from 'ws';
import { startInProcessProxy } from '../helpers/in-process-proxy.js';
import { upstreamFor } from '../helpers/upstream.js';
import { cookie, rawExchange, request } from '../helpers/client.js';
import { freePort } from '../helpers/ports.js';

async function setup(t: TestContext) {
  const a = await upstreamFor(t, 'a');
  const b = await upstreamFor(t, 'b');
  const proxy = await startInProcessProxy(t, { sessions: { alice: a.port, bob: b.port, dead: await freePort() } });
  return { a, b, proxy, port: proxy.port };
}

/** Opens a WebSocket through the proxy and resolves with it and its first message. */
async function open(port: number, key: string | undefined, path = '/jupyter/api/kernels/k1/channels?session_id=s'): Promise<{ ws: WebSocket; hello: { upstream: string; url: string } }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: key === undefined ? {} : cookie(key), handshakeTimeout: 3000 });
  const [data] = (await once(ws, 'message')) as [Buffer];
  return { ws, hello: JSON.parse(data.toString()) as { upstream: string; url: string } };
}

/** Resolves with the HTTP status a failed WebSocket handshake got. */
async function refusedStatus(port: number, headers: Record<string, string>): Promise<number> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api/kernels/x`, { headers, handshakeTimeout: 3000 });
  ws.on('error', () => {});
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
  ws.terminate();
  return res.statusCode;
}

test('WebSocket upgrades are routed by the cookie and piped both ways, path unchanged', async (t) => {
  const { port } = await setup(t);
  const { ws: wa, hello: ha } = await open(port, 'alice');
  const { ws: wb, hello: hb } = await open(port, 'bob', '/galaxy/gie_proxy//x?y=%2F');
  t.after(() => {
    wa.terminate();
    wb.terminate();
  });
  assert.equal(ha.upstream, 'a');
  assert.equal(ha.url, '/jupyter/api/kernels/k1/channels?session_id=s');
  assert.equal(hb.upstream, 'b');
  assert.equal(hb.url, '/galaxy/gie_proxy//x?y=%2F');
  const big = Buffer.alloc(256 * 1024, 3);
  wa.send(big);
  const [echo, isBinary] = (await once(wa, 'message')) as [Buffer, boolean];
  assert.ok(isBinary);
  assert.equal(Buffer.compare(echo, big), 0);
  wb.send('text frame');
  const [text] = (await once(wb, 'message')) as [Buffer];
  assert.equal(text.toString(), 'text frame');
});

test('an upgrade without a mapped cookie gets a real 404 response and the process carries on', async (t) => {
  const { port } = await setup(t);
  assert.equal(await refusedStatus(port, {}), 404);
  assert.equal(await refusedStatus(port, cookie('nobody')), 404);
  const raw = await rawExchange(
    port,
    'GET /api/kernels/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  assert.match(raw.text, /^HTTP\/1\.1 404 Not Found\r\n/);
  assert.match(raw.text, /No interactive environment is registered for this session\.\n$/);
  assert.ok(raw.closedByServer, 'socket closed after the answer');
  assert.equal((await request(port, { headers: cookie('alice') })).status, 200);
});

test('an upgrade to an unreachable container gets a 502 status line', async (t) => {
  const { port } = await setup(t);
  assert.equal(await refusedStatus(port, cookie('dead')), 502);
});

test('an upgrade that is not a WebSocket GET gets 400', async (t) => {
  const { port } = await setup(t);
  const raw = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nCookie: galaxysession=alice\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n');
  assert.match(raw.text, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.ok(raw.closedByServer);
});

test('closing the client side closes the container side, and the other way round', async (t) => {
  const { port, a } = await setup(t);
  const before = a.sockets.size;
  const { ws } = await open(port, 'alice');
  assert.equal(a.sockets.size, before + 1);
  const upstreamSocket = [...a.sockets].at(-1)!;
  const upstreamClosed = once(upstreamSocket, 'close');
  ws.terminate(); // abrupt: no close frame, the TCP connection just goes
  await Promise.race([upstreamClosed, timeout(2000, 'container socket left open after the client vanished')]);

  const { ws: second } = await open(port, 'alice');
  const clientClosed = once(second, 'close');
  for (const client of a.wss.clients) client.terminate();
  await Promise.race([clientClosed, timeout(2000, 'client socket left open after the container vanished')]);
  assert.equal(second.readyState, WebSocket.CLOSED);
});

function timeout(ms: number, message: string): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(message)), ms).unref());
}

