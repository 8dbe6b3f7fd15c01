/**
 * The faults of INTERACTIVE-TOOLS.md §6–7 against the spawned `gx-it-proxy`
 * bin, in its three modes: map (path and host routing), forward (Galaxy's
 * half of a double proxy) and header (the remote half). Each one of them hung
 * gx-it-proxy 0.2.3 or killed it; here each gets a status within a request
 * timeout, and ends with the same checks: the process is alive, still routes,
 * logged no error-level line and holds no more descriptors than after start.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import WebSocket from 'ws';
import { spawnProxy, type ProxyProcess } from '../helpers/child.js';
import { rawExchange, request } from '../helpers/client.js';
import { openFds, waitForFds } from '../helpers/fds.js';
import { IT_PREFIX, saveAndWait, startItProxy } from '../helpers/it-proxy.js';
import { freePort } from '../helpers/ports.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

const GOOD = { key: '24q1dbzrknq1v', token: '1a1p13jnahscj' };
const DEAD = { key: '326unmiv5sanl', token: '0b0x7kq2mzt3c' };
const HELD = { key: '4kk1w0e3rq7az', token: 'p9c1s8e2m0f4d' };
const DOMAIN = 'ep.interactivetool.galaxy.example.org';

type Mode = 'map' | 'forward' | 'header';

interface Setup {
  mode: Mode;
  proc: ProxyProcess;
  pid: number;
  port: number;
  good: Upstream;
  /** Sends a request the proxy routes to `good` in this mode. */
  routed: () => Promise<number>;
  /** A container that accepts WebSocket upgrades and never answers them. */
  held: Holding;
  baseFds: number;
}

/** A container whose upgrades stay pending: the client's reset comes during the handshake. */
interface Holding {
  port: number;
  /** Upgrades received that the proxy has not let go of. */
  pending: () => number;
  /** Resolves when the next upgrade arrives. */
  nextUpgrade: () => Promise<void>;
}

async function holdingContainer(t: TestContext): Promise<Holding> {
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => res.end('held'));
  server.on('upgrade', (_req, socket: net.Socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    // The proxy letting go shows as its FIN (an http.Server socket is half-open); close ours too.
    socket.once('end', () => socket.destroy());
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    pending: () => sockets.size,
    nextUpgrade: () => once(server, 'upgrade').then(() => undefined),
  };
}

/**
 * The proxy in `mode`: map mode serves GOOD, DEAD (nothing listens) and HELD
 * from Galaxy's map; forward mode sends them on to a header-mode proxy; header
 * mode alone takes the target from the request.
 */
async function setup(t: TestContext, mode: Mode): Promise<Setup> {
  const good = await startUpstream('good');
  t.after(() => good.close());
  const held = await holdingContainer(t);
  const deadPort = await freePort();
  let proc: ProxyProcess;
  let port: number;
  if (mode === 'header') {
    port = await freePort();
    proc = spawnProxy(['--ip', '127.0.0.1', '--port', String(port), '--verbose'], { bin: 'gx-it-proxy' });
    t.after(() => proc.kill());
    await proc.started(10_000);
  } else {
    const extra: string[] = [];
    if (mode === 'forward') {
      const remotePort = await freePort();
      const remote = spawnProxy(['--ip', '127.0.0.1', '--port', String(remotePort)], { bin: 'gx-it-proxy' });
      t.after(() => remote.kill());
      await remote.started(10_000);
      extra.push('--forwardIP', '127.0.0.1', '--forwardPort', String(remotePort));
    }
    const it = await startItProxy(t, ['--verbose', ...extra], 'gx-it-proxy');
    await saveAndWait(it, [
      { ...GOOD, host: '127.0.0.1', port: good.port },
      { ...DEAD, host: '127.0.0.1', port: deadPort },
      { ...HELD, host: '127.0.0.1', port: held.port },
    ]);
    proc = it.proc;
    port = it.port;
  }
  const routed = async (): Promise<number> =>
    mode === 'header'
      ? (await request(port, { headers: { 'x-interactive-tool-host': '127.0.0.1', 'x-interactive-tool-port': String(good.port) } })).status
      : (await request(port, { path: `${IT_PREFIX}/${GOOD.key}/${GOOD.token}/` })).status;
  assert.equal(await routed(), 200);
  const pid = proc.child.pid ?? 0;
  return { mode, proc, pid, port, good, routed, held, baseFds: openFds(pid) };
}

/** The closing checks every fault must pass. */
async function assertRecovered(s: Setup): Promise<void> {
  assert.equal(s.proc.child.exitCode, null, `the proxy exited; stderr: ${s.proc.stderr}`);
  assert.equal(await s.routed(), 200, 'a mapped request is still routed');
  s.good.server.closeIdleConnections();
  await waitForFds(s.pid, s.baseFds);
  const bad = s.proc.logs.lines.filter((l) => l.level === 'error' || l.level === 'fatal' || l.level === 'raw');
  assert.deepEqual(bad, [], 'no error-level or non-JSON output');
  assert.equal(s.proc.stderr, '');
}

/** An upgrade on a raw socket: the status line the proxy writes back, and how long it took. */
async function rawUpgrade(port: number, head: string): Promise<{ status: number | undefined; ms: number }> {
  const started = performance.now();
  const { text } = await rawExchange(port, `${head}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${Buffer.alloc(16, 1).toString('base64')}\r\n\r\n`, 5000);
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1];
  return { status: status === undefined ? undefined : Number(status), ms: performance.now() - started };
}

/** An HTTP request on a raw socket (HTTP/1.0 and other shapes a client library will not send). */
async function rawRequest(port: number, text: string): Promise<{ status: number | undefined; ms: number }> {
  const started = performance.now();
  const { text: answer } = await rawExchange(port, text, 5000);
  const status = /^HTTP\/1\.[01] (\d{3}) /.exec(answer)?.[1];
  return { status: status === undefined ? undefined : Number(status), ms: performance.now() - started };
}

const note = (t: TestContext, what: string, ms: number): void => t.diagnostic(`${what}: answered in ${ms.toFixed(1)} ms`);

for (const mode of ['map', 'forward'] as const) {
  test(`IT fault (${mode} mode): unknown key, wrong token, no Host → 404/400 at once over HTTP and on the upgrade socket, nothing reaches a container`, async (t) => {
    const s = await setup(t, mode);
    const connections = s.good.connectionCount;
    for (const [what, head, expected] of [
      ['unknown key by path', `GET ${IT_PREFIX}/nosuchkey0000/${GOOD.token}/ HTTP/1.1\r\nHost: galaxy.example.org\r\n`, 404],
      ['wrong token by path', `GET ${IT_PREFIX}/${GOOD.key}/wrongtoken000/ HTTP/1.1\r\nHost: galaxy.example.org\r\n`, 404],
      ['query right after a wrong token', `GET ${IT_PREFIX}/${GOOD.key}/wrongtoken000?x=1 HTTP/1.1\r\nHost: galaxy.example.org\r\n`, 404],
      ['unknown key by host', `GET / HTTP/1.1\r\nHost: nosuchkey0000-${GOOD.token}.${DOMAIN}\r\n`, 404],
      ['wrong token by host', `GET / HTTP/1.1\r\nHost: ${GOOD.key}-wrongtoken000.${DOMAIN}\r\n`, 404],
      ['no Host, not under the prefix', 'GET /tree HTTP/1.1\r\n', 400],
    ] as const) {
      const http11 = await rawRequest(s.port, `${head}Connection: close\r\n\r\n`);
      assert.equal(http11.status, what.startsWith('no Host') ? 400 : expected, `${what} (HTTP/1.1)`);
      note(t, `${mode}, ${what}, HTTP/1.1`, http11.ms);
      const upgrade = await rawUpgrade(s.port, head);
      assert.equal(upgrade.status, expected, `${what} (upgrade)`);
      note(t, `${mode}, ${what}, upgrade`, upgrade.ms);
    }
    // HTTP/1.0 without Host hung gx-it-proxy: here a 400.
    const http10 = await rawRequest(s.port, 'GET /tree HTTP/1.0\r\n\r\n');
    assert.equal(http10.status, 400);
    note(t, `${mode}, HTTP/1.0 without Host`, http10.ms);
    assert.equal(s.good.connectionCount, connections, 'no refused request reached the container (the key is known, the token was not)');
    // The path wins over a Host that names another entry point (gx-it-proxy ≥ 0.0.6).
    assert.equal((await request(s.port, { path: `${IT_PREFIX}/${GOOD.key}/${GOOD.token}/`, headers: { host: `nosuchkey0000-x.${DOMAIN}` } })).status, 200);
    await assertRecovered(s);
  });

  test(`IT fault (${mode} mode): a container that is down → 502 over HTTP and on the upgrade socket`, async (t) => {
    const s = await setup(t, mode);
    const r = await rawRequest(s.port, `GET ${IT_PREFIX}/${DEAD.key}/${DEAD.token}/ HTTP/1.1\r\nHost: galaxy.example.org\r\nConnection: close\r\n\r\n`);
    assert.equal(r.status, 502);
    note(t, `${mode}, container down, HTTP`, r.ms);
    const u = await rawUpgrade(s.port, `GET /ws HTTP/1.1\r\nHost: ${DEAD.key}-${DEAD.token}.${DOMAIN}\r\n`);
    assert.equal(u.status, 502);
    note(t, `${mode}, container down, upgrade`, u.ms);
    await assertRecovered(s);
  });
}

test('IT fault (header mode): no x-interactive-tool-host, a bad port, an upgrade without target → 400 at once; the process lives', async (t) => {
  const s = await setup(t, 'header');
  for (const [what, headers] of [
    ['no target header', ''],
    ['a port that is not one', 'x-interactive-tool-host: 127.0.0.1\r\nx-interactive-tool-port: eighty\r\n'],
    ['a host:port that is not one', 'x-interactive-tool-host: 127.0.0.1:\r\n'],
  ] as const) {
    const r = await rawRequest(s.port, `GET / HTTP/1.1\r\nHost: remote\r\n${headers}Connection: close\r\n\r\n`);
    assert.equal(r.status, 400, what);
    note(t, `header, ${what}, HTTP`, r.ms);
    const u = await rawUpgrade(s.port, `GET /ws HTTP/1.1\r\nHost: remote\r\n${headers}`);
    assert.equal(u.status, 400, `${what} (upgrade)`);
    note(t, `header, ${what}, upgrade`, u.ms);
  }
  const noHost = await rawUpgrade(s.port, 'GET /ws HTTP/1.1\r\n');
  assert.equal(noHost.status, 400);
  // host:port in one header still works (gx-it-proxy 694db04).
  assert.equal((await request(s.port, { headers: { 'x-interactive-tool-host': `127.0.0.1:${s.good.port}` } })).status, 200);
  await assertRecovered(s);
});

for (const mode of ['map', 'forward', 'header'] as const) {
  test(`IT fault (${mode} mode): 30 clients reset while the container is still handshaking their WebSocket → the process lives, nothing leaked`, async (t) => {
    const s = await setup(t, mode);
    const head =
      mode === 'header'
        ? `GET /ws HTTP/1.1\r\nHost: remote\r\nx-interactive-tool-host: 127.0.0.1\r\nx-interactive-tool-port: ${s.held.port}\r\n`
        : `GET ${IT_PREFIX}/${HELD.key}/${HELD.token}/api/kernels/k/channels HTTP/1.1\r\nHost: galaxy.example.org\r\n`;
    for (let i = 0; i < 30; i++) {
      const socket = net.connect(s.port, '127.0.0.1');
      socket.on('error', () => {});
      await once(socket, 'connect');
      const upgraded = s.held.nextUpgrade();
      socket.write(`${head}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${Buffer.alloc(16, i).toString('base64')}\r\n\r\n`);
      // The container has the upgrade and has not answered: the client resets now.
      await upgraded;
      socket.resetAndDestroy();
    }
    // The proxy lets go of the container's side of each abandoned handshake
    // (in forward mode through the second proxy: the reset is passed on).
    await waitUntil('the held upgrades to be closed by the proxy', () => s.held.pending() === 0, { timeoutMs: 10_000 });
    // The client left; the container is not to blame.
    assert.deepEqual(s.proc.logs.lines.filter((l) => l.level === 'warn' && l.msg.startsWith('container')), []);
    assert.ok(s.proc.logs.lines.filter((l) => l.msg === 'client left during the WebSocket handshake').length >= 1);
    // A WebSocket to a live container still works after all of that.
    if (mode !== 'header') {
      const ws = new WebSocket(`ws://127.0.0.1:${s.port}${IT_PREFIX}/${GOOD.key}/${GOOD.token}/ws`, { handshakeTimeout: 5000 });
      const [hello] = (await once(ws, 'message')) as [Buffer];
      assert.match(hello.toString(), /"upstream":"good"/);
      ws.terminate();
    }
    await assertRecovered(s);
  });
}
