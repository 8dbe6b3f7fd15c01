import { test } from 'node:test';
import assert from 'node:assert/strict';
import http, { type ClientRequest } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ContainerAgent, noteKeepAliveHint, ProxyDeadlines } from '../../../src/http/container-pool.js';
import { haveSameShape } from '../../helpers/v8-shapes.js';

// V8's gc, as the CLI gets it (src/cli/run.ts): the test needs a full collection on demand.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** One request to `port` on a connection of its own; resolves once its response has been read and its socket closed. */
function oneRequest(port: number, deadlines: ProxyDeadlines, letGo: boolean): Promise<WeakRef<ClientRequest>> {
  return new Promise((resolve, reject) => {
    const req = http.get({ port, host: '127.0.0.1', agent: false }, (res) => {
      if (letGo) deadlines.done(req);
      res.resume();
      res.on('end', () => req.socket?.once('close', () => setImmediate(() => resolve(ref))));
    });
    req.on('error', reject);
    deadlines.watch(req);
    const ref = new WeakRef(req);
  });
}

test('ProxyDeadlines lets an answered request go at once (done), not at its next check a second later', async (t) => {
  const server = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  // 300 s (the default --proxy-timeout): one check a second.
  const deadlines = new ProxyDeadlines(300_000);
  t.after(() => deadlines.close());

  const answered = await oneRequest(port, deadlines, true);
  const notDone = await oneRequest(port, deadlines, false);
  gc();
  assert.equal(answered.deref(), undefined, 'an answered request (done) is not kept alive by the deadlines');
  // The control: a request the deadlines were not told about stays until the next check.
  assert.notEqual(notDone.deref(), undefined, 'a finished request not let go is held until the next check');
});

/** Two requests one after the other on `agent`'s one pooled connection: the connection's `timeout` listeners during each answer, and the connection. */
async function twoPooledRequests(port: number, agent: http.Agent, hint?: string): Promise<{ listenersDuring: number[]; socket: Socket; reused: boolean }> {
  const listenersDuring: number[] = [];
  let reused = false;
  let socket: Socket | undefined;
  for (let i = 0; i < 2; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ port, host: '127.0.0.1', agent }, (res) => {
        socket = req.socket!;
        reused = req.reusedSocket;
        listenersDuring.push(socket.listenerCount('timeout'));
        // What the proxy's proxyRes handler does with a container's Keep-Alive header.
        if (hint !== undefined) noteKeepAliveHint(socket, hint);
        res.resume();
        res.on('end', () => setImmediate(resolve));
      });
      req.on('error', reject);
    });
  }
  return { listenersDuring, socket: socket!, reused };
}

test('ContainerAgent: no per-request time-out listener or timer beyond a plain keep-alive Agent; idle pooled connections dropped by a sweep', async (t) => {
  const server = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  const plain = new http.Agent({ keepAlive: true });
  const ours = new ContainerAgent();
  t.after(() => {
    plain.destroy();
    ours.destroy();
  });
  const reference = await twoPooledRequests(port, plain);
  // Keep-Alive: timeout=2 → dropped a second before the container would, after 1 s idle.
  const measured = await twoPooledRequests(port, ours, 'timeout=2');
  assert.ok(measured.reused, 'the second request reused the pooled connection');
  assert.deepEqual(measured.listenersDuring, reference.listenersDuring, "the connection's timeout listeners during an answer, ours and a plain Agent's");
  assert.ok(!measured.socket.timeout, `no timer on the pooled connection (timeout ${String(measured.socket.timeout)})`);
  const pooledAt = performance.now();
  await Promise.race([once(measured.socket, 'close'), sleep(3000)]);
  const idleMs = performance.now() - pooledAt;
  assert.ok(measured.socket.destroyed, 'the idle pooled connection was dropped');
  assert.ok(idleMs >= 950 && idleMs < 1600, `dropped after ${Math.round(idleMs)} ms idle (1,000 ms, checked every 250 ms)`);
  assert.equal(Object.keys(ours.freeSockets).length, 0, 'the pool is empty');
});

test("ContainerAgent: Node's pool defaults, and one shape for every pooled connection, whether or not its container sent a Keep-Alive hint", async (t) => {
  let hinted = true;
  const server = http.createServer((_req, res) => {
    // The first connection's container announces its time-out, the second's does not.
    if (hinted) res.setHeader('keep-alive', 'timeout=30');
    res.end('ok');
  });
  // No time-out of Node's own, so no Keep-Alive header unless set above.
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  const ours = new ContainerAgent();
  t.after(() => ours.destroy());
  assert.equal(ours.maxSockets, Infinity);
  assert.equal(ours.maxFreeSockets, 256);
  assert.equal((ours as http.Agent & { scheduling?: string }).scheduling, 'lifo');
  const pooledAfterOne = async (): Promise<Socket> => {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const req = http.get({ port, host: '127.0.0.1', agent: ours }, (res) => {
        assert.equal(res.headers['keep-alive'], hinted ? 'timeout=30' : undefined);
        noteKeepAliveHint(res.socket, res.headers['keep-alive']);
        res.resume();
        res.on('end', () => setImmediate(() => resolve(req.socket!)));
      });
      req.on('error', reject);
    });
    assert.ok(!socket.destroyed, 'the connection went back to the pool');
    return socket;
  };
  const first = await pooledAfterOne();
  hinted = false;
  // Keep the first connection busy so that the second request opens another.
  const second = await new Promise<Socket>((resolve, reject) => {
    const busy = http.get({ port, host: '127.0.0.1', agent: ours }, (res) => {
      pooledAfterOne().then(resolve, reject);
      res.resume();
    });
    busy.on('error', reject);
  });
  assert.notEqual(first, second, 'two connections');
  assert.ok(haveSameShape(first, second), 'the pooled connections share one hidden class');
});
