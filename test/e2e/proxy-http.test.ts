import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http, { type IncomingMessage } from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import diagnostics from 'node:diagnostics_channel';
import { upstreamFor, type Seen } from '../helpers/upstream.js';
import { startInProcessProxy, type MappedProxyOptions } from '../helpers/in-process-proxy.js';
import { cookie, request } from '../helpers/client.js';
import { freePort } from '../helpers/ports.js';
import { ANSWERS, BODY_DRAIN_MS } from '../../src/http/answers.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';

/** A proxy with two containers mapped to sessions `alice` and `bob`. */
async function setup(t: TestContext, options: MappedProxyOptions = {}) {
  const a = await upstreamFor(t, 'a');
  const b = await upstreamFor(t, 'b');
  const proxy = await startInProcessProxy(t, { sessions: { alice: a.port, bob: b.port }, ...options });
  return { a, b, map: proxy.map, proxy, port: proxy.port };
}

test('routes each request by the session cookie to its container', async (t) => {
  const { port } = await setup(t);
  const ra = await request(port, { headers: cookie('alice') });
  const rb = await request(port, { headers: { cookie: 'other=1; galaxysession=bob; x=y' } });
  assert.equal(ra.status, 200);
  assert.equal((JSON.parse(ra.body) as Seen).upstream, 'a');
  assert.equal((JSON.parse(rb.body) as Seen).upstream, 'b');
});

test('decides per request, not per connection: one keep-alive connection, two containers', async (t) => {
  const { port } = await setup(t);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  let sockets = 0;
  agent.on('free', () => {});
  const first = await request(port, { headers: cookie('alice'), agent });
  const second = await request(port, { headers: cookie('bob'), agent });
  const third = await request(port, { headers: cookie('alice'), agent });
  for (const s of Object.values(agent.freeSockets)) sockets += s?.length ?? 0;
  assert.equal(sockets, 1, 'the client used one connection');
  assert.deepEqual(
    [first, second, third].map((r) => (JSON.parse(r.body) as Seen).upstream),
    ['a', 'b', 'a'],
  );
});

test('forwards path and query byte for byte and keeps the client Host header', async (t) => {
  const { port } = await setup(t);
  const path = '/galaxy/gie_proxy/jupyter//ipython/api/contents/a%2Fb/../c?x=%2F&y=1&&z=%E2%9C%93#';
  const r = await request(port, { path: path.replace('#', ''), headers: { ...cookie('alice'), host: 'galaxy.example.org:8800' } });
  const seen = JSON.parse(r.body) as Seen;
  assert.equal(seen.url, path.replace('#', ''));
  assert.equal(seen.headers.host, 'galaxy.example.org:8800');
});

test('reuses connections to the container (keep-alive pool)', async (t) => {
  const { port, a } = await setup(t);
  for (let i = 0; i < 20; i++) {
    const r = await request(port, { headers: cookie('alice') });
    assert.equal(r.status, 200);
  }
  assert.equal(a.connectionCount, 1, `20 sequential requests used ${a.connectionCount} upstream connections`);
});

test('a client Connection: close does not reach the container or defeat the pool', async (t) => {
  const { port, a } = await setup(t);
  for (let i = 0; i < 5; i++) {
    const r = await request(port, { headers: { ...cookie('alice'), connection: 'close', 'x-drop': 'me', 'keep-alive': 'timeout=1' } });
    const seen = JSON.parse(r.body) as Seen;
    assert.notEqual(seen.headers.connection, 'close');
    assert.equal(seen.headers['keep-alive'], undefined);
  }
  assert.equal(a.connectionCount, 1);
});

test('no cookie or an unknown session: an immediate 404 with a short plain-text body', async (t) => {
  const { port } = await setup(t);
  for (const headers of [{}, cookie('nobody'), { cookie: 'galaxysession=' }, { cookie: 'foo=alice' }]) {
    const started = Date.now();
    const r = await request(port, { headers, timeoutMs: 1000 });
    assert.equal(r.status, 404);
    assert.match(r.headers['content-type'] ?? '', /^text\/plain/);
    assert.equal(r.body, 'No interactive environment is registered for this session.\n');
    assert.ok(Date.now() - started < 500);
  }
});

test('a refused upload whose body is still arriving: its body is read, then the 404 and a clean close (no reset that could discard the answer)', async (t) => {
  const { port } = await setup(t);
  for (const framing of ['Content-Length: 20000', 'Transfer-Encoding: chunked']) {
    const socket = net.connect(port, '127.0.0.1');
    const errors: string[] = [];
    socket.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    const ended = once(socket, 'close');
    await once(socket, 'connect');
    const half = 'b'.repeat(10_000);
    const part = (text: string): string => (framing.startsWith('Content') ? text : `${text.length.toString(16)}\r\n${text}\r\n`);
    socket.write(`PUT /api/contents/x.ipynb HTTP/1.1\r\nHost: x\r\nCookie: galaxysession=nobody\r\n${framing}\r\nConnection: close\r\n\r\n${part(half)}`);
    // The rest comes later, as an upload on a slow link does: without the
    // wait for it, the proxy has answered and closed by now, and this write
    // gets a reset.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(Buffer.concat(received).length, 0, `${framing}: no answer before the body is in`);
    socket.end(`${part(half)}${framing.startsWith('Content') ? '' : '0\r\n\r\n'}`);
    await ended;
    const text = Buffer.concat(received).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 404 /, framing);
    assert.ok(text.endsWith('No interactive environment is registered for this session.\n'), framing);
    assert.deepEqual(errors, [], `${framing}: the connection ended without an error`);
  }
});

test('a refused request whose body never comes: answered after the drain bound, not held open', async (t) => {
  const { port } = await setup(t);
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const received: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  await once(socket, 'connect');
  const started = Date.now();
  socket.write('POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly this');
  await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, 5000))]);
  socket.destroy();
  const ms = Date.now() - started;
  assert.match(Buffer.concat(received).toString('latin1'), /^HTTP\/1\.1 404 /);
  assert.ok(ms >= BODY_DRAIN_MS - 50 && ms < BODY_DRAIN_MS + 2000, `answered after ${ms} ms`);
});

test('CORS: the Origin is echoed with credentials, on proxied and on error responses', async (t) => {
  const { port } = await setup(t);
  const origin = 'https://galaxy.example.org:8080';
  const ok = await request(port, { headers: { ...cookie('alice'), origin } });
  assert.equal(ok.headers['access-control-allow-origin'], origin);
  assert.equal(ok.headers['access-control-allow-credentials'], 'true');
  const missing = await request(port, { headers: { origin } });
  assert.equal(missing.status, 404);
  assert.equal(missing.headers['access-control-allow-origin'], origin);
  const noOrigin = await request(port, { headers: cookie('alice') });
  assert.equal(noOrigin.headers['access-control-allow-origin'], undefined);
});

test('--reverseProxy puts the proxy port into 302 redirects to http://localhost/', async (t) => {
  const redirector = await upstreamFor(t, 'r', (req, res) => {
    const to = req.url === '/other' ? 'http://example.org/x' : 'http://localhost/galaxy/gie_proxy/jupyter/tree';
    res.writeHead(req.url === '/301' ? 301 : 302, { location: to });
    res.end();
    return true;
  });
  const port = await freePort();
  const proxy = await startInProcessProxy(t, { sessions: { alice: redirector.port }, port, reverseProxy: true });
  const plain = await startInProcessProxy(t, { sessionsPath: proxy.map.path, reverseProxy: false });
  const r = await request(port, { headers: cookie('alice') });
  assert.equal(r.status, 302);
  assert.equal(r.headers.location, `http://localhost:${port}/galaxy/gie_proxy/jupyter/tree`);
  assert.equal((await request(port, { path: '/other', headers: cookie('alice') })).headers.location, 'http://example.org/x');
  assert.equal((await request(port, { path: '/301', headers: cookie('alice') })).headers.location, 'http://localhost/galaxy/gie_proxy/jupyter/tree');
  assert.equal((await request(plain.port, { headers: cookie('alice') })).headers.location, 'http://localhost/galaxy/gie_proxy/jupyter/tree');
});

test('RStudio URLs: Content-Type and Content-Length reach the container with those names, charset dropped from forms', async (t) => {
  const { port } = await setup(t);
  const body = 'a=1&b=2';
  const r = await request(port, {
    method: 'POST',
    path: '/galaxy/gie_proxy/rstudio/auth-do-sign-in',
    headers: { ...cookie('alice'), 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8', 'content-length': body.length },
    body,
  });
  const seen = JSON.parse(r.body) as Seen;
  const names = seen.rawHeaders.filter((_, i) => i % 2 === 0);
  assert.ok(names.includes('Content-Type'), names.join(','));
  assert.ok(names.includes('Content-Length'), names.join(','));
  assert.equal(seen.headers['content-type'], 'application/x-www-form-urlencoded');
  assert.equal(seen.bodyBytes, body.length);
  const other = JSON.parse(
    (await request(port, { method: 'POST', path: '/jupyter/api', headers: { ...cookie('alice'), 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' }, body })).body,
  ) as Seen;
  assert.equal(other.headers['content-type'], 'application/x-www-form-urlencoded; charset=UTF-8');
});

test('an unreachable container gives a fast 502 with no internal details', async (t) => {
  const { port, map, proxy } = await setup(t);
  const dead = await freePort();
  const reloaded = proxy.logs.next(MAP_LOG.reloaded);
  map.addSession('carol', '127.0.0.1', dead);
  await reloaded;
  const started = Date.now();
  const r = await request(port, { headers: cookie('carol') });
  assert.equal(r.status, 502);
  assert.equal(r.body, 'The interactive environment for this session is not reachable.\n');
  assert.ok(!r.body.includes(String(dead)));
  assert.ok(Date.now() - started < 1000);
  const warn = await proxy.logs.waitFor((l) => l.msg === ANSWERS['container-unreachable'].message);
  assert.equal(warn.code, 'ECONNREFUSED');
  assert.equal(warn.target, `127.0.0.1:${dead}`);
});

test('a container that stops mid-response ends that response, not the process', async (t) => {
  const dying = await upstreamFor(t, 'dying', (_req, res) => {
    res.writeHead(200, { 'content-length': '1000000' });
    res.write(Buffer.alloc(1000));
    setImmediate(() => res.socket?.destroy());
    return true;
  });
  const good = await upstreamFor(t, 'good');
  const proxy = await startInProcessProxy(t, { sessions: { alice: dying.port, bob: good.port } });
  await assert.rejects(request(proxy.port, { headers: cookie('alice'), timeoutMs: 2000 }), (err: Error) => !/timed out/.test(err.message));
  assert.equal((await request(proxy.port, { headers: cookie('bob') })).status, 200);
});

test('streams bodies both ways with backpressure (nothing is buffered whole)', async (t) => {
  const chunk = Buffer.alloc(64 * 1024, 7);
  let uploadFirstSeenAt = -1;
  let sentBeforeFirstSeen = 0;
  let sent = 0;
  /** Bytes of the download the container got rid of: what the proxy (and the kernel's socket buffers) took. */
  let written = 0;
  const sink = await upstreamFor(t, 'sink', (req, res) => {
    if (req.url === '/download') {
      // Write only as fast as the proxy drains: count what the proxy accepted.
      const total = 64 * 1024 * 1024;
      res.writeHead(200, { 'content-length': String(total) });
      const pump = (): void => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return true;
    }
    let received = 0;
    req.on('data', (c: Buffer) => {
      if (uploadFirstSeenAt < 0) {
        uploadFirstSeenAt = received;
        sentBeforeFirstSeen = sent;
      }
      received += c.length;
    });
    req.on('end', () => res.end(String(received)));
    return true;
  });
  const proxy = await startInProcessProxy(t, { sessions: { alice: sink.port } });

  // Upload 64 MiB: the container must see bytes long before the client is done.
  const total = 64 * 1024 * 1024;
  const uploaded = await new Promise<string>((resolve, reject) => {
    const req = http.request({ port: proxy.port, host: '127.0.0.1', method: 'PUT', path: '/upload', headers: { ...cookie('alice'), 'content-length': String(total) } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    const pump = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  assert.equal(Number(uploaded), total);
  assert.ok(sentBeforeFirstSeen < total / 4, `container saw the first byte only after ${sentBeforeFirstSeen} bytes were sent`);

  // Download 64 MiB while reading slowly: the proxy must not read ahead without bound.
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get({ port: proxy.port, host: '127.0.0.1', path: '/download', headers: cookie('alice') }, resolve).on('error', reject);
  });
  res.pause();
  await new Promise((r) => setTimeout(r, 500)); // let buffers fill while the client is not reading
  // A proxy that read ahead without bound would have taken all 64 MiB by now
  // (loopback moves that in well under 500 ms); with backpressure the
  // container is held back once the socket buffers on the way are full. (The
  // RSS of this process says less: when V8 frees the dead buffers of a stream
  // depends on the Node version, up to 128 MiB late on Node 24.)
  assert.ok(written < 32 * 1024 * 1024, `the container got ${written} bytes out while the client read nothing: the download was buffered`);
  let got = 0;
  res.on('data', (c: Buffer) => (got += c.length));
  res.resume();
  await once(res, 'end');
  assert.equal(got, 64 * 1024 * 1024);
});

test('an upload to a container that does not read holds the client back: the proxy buffers none of it', async (t) => {
  const total = 64 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 5);
  let stalled: IncomingMessage | undefined;
  let received = 0;
  let arrive: () => void = () => undefined;
  const arrived = new Promise<void>((resolve) => (arrive = resolve));
  const sink = await upstreamFor(t, 'not-reading', (req, res) => {
    // Reads nothing until told: the kernel buffers fill, then the proxy's.
    req.pause();
    stalled = req;
    req.on('data', (c: Buffer) => (received += c.length));
    req.on('end', () => res.end(String(received)));
    arrive();
    return true;
  });
  const proxy = await startInProcessProxy(t, { sessions: { alice: sink.port } });

  // The proxy's two ends of this upload: the request it received, and its
  // connection to the container (among the client sockets opened meanwhile).
  let fromClient: IncomingMessage | undefined;
  const opened: net.Socket[] = [];
  const onServerRequest = ({ request }: { request: IncomingMessage }): void => {
    if (request.socket.localPort === proxy.port) fromClient = request;
  };
  const onClientSocket = ({ socket }: { socket: net.Socket }): void => void opened.push(socket);
  diagnostics.subscribe('http.server.request.start', onServerRequest as (message: unknown) => void);
  diagnostics.subscribe('net.client.socket', onClientSocket as (message: unknown) => void);
  t.after(() => {
    diagnostics.unsubscribe('http.server.request.start', onServerRequest as (message: unknown) => void);
    diagnostics.unsubscribe('net.client.socket', onClientSocket as (message: unknown) => void);
  });
  const client = http.request({ port: proxy.port, host: '127.0.0.1', method: 'PUT', path: '/upload', agent: false, headers: { ...cookie('alice'), 'content-length': String(total) } });
  const answered = new Promise<string>((resolve, reject) => {
    client.on('response', (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    });
    client.on('error', reject);
  });
  let sent = 0;
  const pump = (): void => {
    while (sent < total) {
      sent += chunk.length;
      if (!client.write(chunk)) return void client.once('drain', pump);
    }
    client.end();
  };
  pump();
  await arrived;
  const toContainer = opened.find((socket) => socket.remotePort === sink.port);
  assert.ok(fromClient !== undefined, 'the proxy got the upload');
  assert.ok(toContainer !== undefined, 'the proxy connected to the container');

  // With backpressure the forwarding pipe pauses the client's request once the
  // container side stops taking bytes; a forwarder that wrote on regardless
  // would never pause it (the wait fails) and would queue the upload in memory.
  if (!fromClient.isPaused()) {
    const client = fromClient;
    await once(client, 'pause', { signal: AbortSignal.timeout(10_000) }).catch(() => {
      assert.fail(`the proxy never held the upload back: it read ${client.socket.bytesRead} bytes, ${toContainer.writableLength} of them queued for the container`);
    });
  }
  const queued = toContainer.writableLength + fromClient.readableLength;
  assert.ok(queued <= 1024 * 1024, `the proxy queued ${queued} bytes of the upload`);
  assert.equal(received, 0);

  // Once the container reads, everything arrives.
  stalled!.resume();
  assert.equal(Number(await answered), total);
});

test('a client that aborts a download closes the connection to the container', async (t) => {
  const slow = await upstreamFor(t, 'slow', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.write(Buffer.alloc(1024));
    // never ends: a long download
    return true;
  });
  const proxy = await startInProcessProxy(t, { sessions: { alice: slow.port } });
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.get({ port: proxy.port, host: '127.0.0.1', headers: cookie('alice'), agent: false }, resolve);
    req.on('error', () => {});
    setTimeout(() => reject(new Error('no response')), 3000).unref();
  });
  await once(res, 'data');
  assert.equal(slow.sockets.size, 1);
  const upstreamSocket = [...slow.sockets][0];
  const closed = once(upstreamSocket, 'close');
  res.destroy();
  (res.socket as net.Socket | null)?.destroy();
  await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('container connection left open')), 2000))]);
  assert.equal(slow.sockets.size, 0);
});
