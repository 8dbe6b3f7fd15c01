import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import WebSocket from 'ws';
import { ANSWERS } from '../src/http/answers.js';
import type { ProxyOptions } from '../src/cli/options.js';
import { cookie, rawExchange, request } from './helpers/client.js';
import { mappedProxy, upstreamFor } from './helpers/fixture.js';
import { freePort } from './helpers/ports.js';
import type { Handler } from './helpers/upstream.js';

/** A proxy routing session `alice` to one container with `handler`. */
async function setup(t: TestContext, options: Partial<ProxyOptions>, handler?: Handler) {
  const container = await upstreamFor(t, 'a', handler);
  const proxy = await mappedProxy(t, { alice: container.port }, options);
  return { container, map: proxy.map, proxy, port: proxy.port };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A raw client that sends a request line and then one header line every `everyMs`, never the end of the headers. */
async function slowHeaders(port: number, everyMs: number): Promise<{ text: string; ms: number }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  const started = Date.now();
  socket.write('GET /slow HTTP/1.1\r\nHost: x\r\nCookie: galaxysession=alice\r\n');
  const drip = setInterval(() => socket.write('X-Slow: 1\r\n'), everyMs);
  let text = '';
  socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
  await Promise.race([once(socket, 'close'), sleep(10_000)]);
  clearInterval(drip);
  socket.destroy();
  return { text, ms: Date.now() - started };
}

test('--headers-timeout: clients that never finish their headers get 408 and are dropped, without holding up others', async (t) => {
  const { port, container } = await setup(t, { headersTimeoutMs: 1000 });
  const slow = Array.from({ length: 50 }, () => slowHeaders(port, 100));
  const silent = rawExchange(port, '', 10_000);
  let dropped = 0;
  void Promise.all(slow).then(() => (dropped = 50));
  // While 50 clients drip headers, others are served.
  for (let i = 0; i < 5; i++) assert.equal((await request(port, { headers: cookie('alice') })).status, 200);
  assert.equal(dropped, 0, 'the other requests were served before the slow clients were dropped');
  for (const { text, ms } of await Promise.all(slow)) {
    assert.match(text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.ok(ms >= 900 && ms < 5000, `dropped after ${ms} ms`);
  }
  const quiet = await silent;
  assert.ok(quiet.closedByServer, 'a client that sends nothing is dropped too');
  assert.equal(container.seen.filter((s) => s.url === '/slow').length, 0, 'no slow request reached the container');
});

test('--proxy-timeout: no answer in time gives 504; a slow upload or a response that pauses is never cut', async (t) => {
  const TIMEOUT = 300;
  const { port } = await setup(t, { proxyTimeoutMs: TIMEOUT }, (req, res) => {
    if (req.url === '/silent') return true; // accepts, never answers
    if (req.url === '/pausing') {
      // Starts at once, then says nothing for twice the time-out.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first ');
      setTimeout(() => res.end('second'), TIMEOUT * 2);
      return true;
    }
    if (req.url === '/upload') {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => res.end(String(bytes)));
      return true;
    }
    return false;
  });

  const started = Date.now();
  const silent = await request(port, { path: '/silent', headers: cookie('alice') });
  assert.equal(silent.status, 504);
  assert.equal(silent.body, ANSWERS['container-timeout'].body);
  assert.ok(Date.now() - started >= TIMEOUT - 20, 'answered before the time-out');

  const pausing = await request(port, { path: '/pausing', headers: cookie('alice') });
  assert.equal(pausing.status, 200);
  assert.equal(pausing.body, 'first second');

  // An upload that takes three time-outs to send: the clock only starts once it is all sent.
  const uploaded = await new Promise<string>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', agent: false, headers: { ...cookie('alice'), 'content-length': '3' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve(`${res.statusCode} ${body}`));
    });
    req.on('error', reject);
    req.write('a');
    setTimeout(() => req.write('b'), TIMEOUT * 1.5);
    setTimeout(() => req.end('c'), TIMEOUT * 3);
  });
  assert.equal(uploaded, '200 3');
});

test('WebSockets: an idle one outlives every time-out by default; --ws-idle-timeout closes it', async (t) => {
  const lenient = await setup(t, { headersTimeoutMs: 200, proxyTimeoutMs: 200 });
  const ws = new WebSocket(`ws://127.0.0.1:${lenient.port}/api/kernels/1/channels`, { headers: cookie('alice') });
  t.after(() => ws.terminate());
  const greeting = once(ws, 'message');
  await once(ws, 'open');
  await greeting;
  await sleep(1000); // idle for five times each time-out
  const echoed = once(ws, 'message');
  ws.send('still there?');
  assert.equal(String((await echoed)[0]), 'still there?');

  const strict = await setup(t, { webSocketIdleTimeoutMs: 300, verbose: true });
  const idle = new WebSocket(`ws://127.0.0.1:${strict.port}/api/kernels/2/channels`, { headers: cookie('alice') });
  t.after(() => idle.terminate());
  idle.on('error', () => {});
  await once(idle, 'open');
  const closed = once(idle, 'close');
  // Traffic keeps it open past the idle time-out ...
  for (let i = 0; i < 6; i++) {
    await sleep(100);
    const echo = once(idle, 'message');
    idle.send(`ping ${i}`);
    await echo;
  }
  assert.equal(idle.readyState, WebSocket.OPEN);
  // ... and silence closes it.
  const quietSince = Date.now();
  await Promise.race([closed, sleep(5000).then(() => assert.fail('idle WebSocket not closed'))]);
  assert.ok(Date.now() - quietSince >= 250);
  const line = await strict.proxy.logs.waitFor((l) => l.msg === 'websocket closed');
  assert.equal(line.closedBy, 'idle');
});

test('over-large headers get 431 and malformed requests 400; none reaches a container', async (t) => {
  const { port, container } = await setup(t, {});
  const cases: Array<[string, string]> = [
    [`GET / HTTP/1.1\r\nHost: x\r\nCookie: galaxysession=alice\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, '431'],
    ['GET / HTTP/1.1\r\nHost: x\r\nCookie: galaxysession=alice\r\nBad Header: x\r\n\r\n', '400'],
    ['GET foo HTTP/1.1\r\nHost: x\r\nCookie: galaxysession=alice\r\n\r\n', '400'],
    ['GET / HTTP/1.1\r\nHost: x\r\nCookie: galaxysession=alice\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', '400'],
    ['\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', '400'], // a TLS ClientHello on the plain port
  ];
  for (const [raw, status] of cases) {
    const { text, closedByServer } = await rawExchange(port, raw);
    assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), `${JSON.stringify(raw.slice(0, 60))} → ${JSON.stringify(text.slice(0, 40))}`);
    assert.ok(closedByServer, 'the connection is closed after the error');
  }
  assert.equal(container.connectionCount, 0, 'nothing reached the container');
  assert.equal((await request(port, { headers: cookie('alice') })).status, 200);
});

test('an upload answered before it was all sent (dead container) is drained: the keep-alive connection serves the next request at once', async (t) => {
  const { port, proxy, map } = await setup(t, {});
  const dead = await freePort();
  const reloaded = proxy.logs.next('session map reloaded');
  map.addSession('bob', '127.0.0.1', dead);
  await reloaded;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const size = 4 * 1024 * 1024; // far more than the socket buffers hold
  const refused = await request(port, { method: 'POST', headers: { ...cookie('bob'), 'content-length': size }, body: Buffer.alloc(size), agent });
  assert.equal(refused.status, 502);
  const started = Date.now();
  const next = await request(port, { headers: cookie('alice'), agent });
  assert.equal(next.status, 200);
  assert.ok(Date.now() - started < 2000, `the next request on the connection waited ${Date.now() - started} ms`);
});

test('bad bytes after a request whose answer is streaming close the connection instead of corrupting the answer', async (t) => {
  const { port } = await setup(t, {}, (req, res) => {
    if (req.url !== '/stream') return false;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('part one;');
    setTimeout(() => res.end('part two'), 300);
    return true;
  });
  const socket = net.connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  await once(socket, 'connect');
  let text = '';
  socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
  socket.write('GET /stream HTTP/1.1\r\nHost: x\r\nCookie: galaxysession=alice\r\n\r\n');
  await once(socket, 'data'); // the answer has started
  socket.write('NOT HTTP AT ALL\r\n\r\n');
  await Promise.race([once(socket, 'close'), sleep(3000)]);
  assert.ok(socket.destroyed || socket.readableEnded, 'the connection was closed');
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.equal(text.indexOf('HTTP/1.1', 1), -1, `a second status line inside the answer: ${JSON.stringify(text)}`);
});

test('keep-alive to containers: a pooled connection is dropped before the time-out the container announced', async (t) => {
  const { port, container } = await setup(t, {});
  container.server.keepAliveTimeout = 2000; // answers carry Keep-Alive: timeout=2
  assert.equal((await request(port, { headers: cookie('alice') })).status, 200);
  const [socket] = [...container.sockets];
  assert.ok(socket !== undefined);
  let endedByProxy = false;
  socket.once('end', () => (endedByProxy = true));
  const started = Date.now();
  await Promise.race([once(socket, 'close'), sleep(5000)]);
  assert.ok(endedByProxy, `the container closed the idle connection itself after ${Date.now() - started} ms`);
});

test('keep-alive to containers: a GET that meets a pooled connection being closed is sent again on a fresh one; a POST is not', async (t) => {
  // A container that answers the first request of each connection and resets
  // the connection on the second, as a server closing an idle connection does.
  const seen: string[] = [];
  const racy = net.createServer((socket) => {
    let requests = 0;
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      const line = chunk.toString('latin1').split('\r\n', 1)[0] ?? '';
      seen.push(line);
      if (++requests === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
      else socket.resetAndDestroy();
    });
  });
  racy.listen(0, '127.0.0.1');
  await once(racy, 'listening');
  t.after(() => racy.close());
  const { port, proxy, map } = await setup(t, {});
  const reloaded = proxy.logs.next('session map reloaded');
  map.addSession('bob', '127.0.0.1', (racy.address() as net.AddressInfo).port);
  await reloaded;
  assert.equal((await request(port, { headers: cookie('bob') })).status, 200);
  const retried = await request(port, { path: '/again', headers: cookie('bob') });
  assert.equal(retried.status, 200, 'the GET was sent again');
  assert.deepEqual(seen, ['GET / HTTP/1.1', 'GET /again HTTP/1.1', 'GET /again HTTP/1.1']);
  const posted = await request(port, { method: 'POST', path: '/post', headers: { ...cookie('bob'), 'content-length': 1 }, body: 'x' });
  assert.equal(posted.status, 502, 'a request with a body is never sent twice');
  assert.equal(seen.filter((l) => l.startsWith('POST')).length, 1);
});
