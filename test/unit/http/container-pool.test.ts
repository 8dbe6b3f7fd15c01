import { test } from 'node:test';
import assert from 'node:assert/strict';
import http, { type ClientRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ContainerAgent, ProxyDeadlines } from '../../../src/http/container-pool.js';

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

/** Two requests one after the other on `agent`'s one pooled connection: the connection's `timeout` listeners during each answer, and its time-out once back in the pool. */
async function twoPooledRequests(port: number, agent: http.Agent): Promise<{ listenersDuring: number[]; idleTimeout: number | undefined; reused: boolean }> {
  const listenersDuring: number[] = [];
  let reused = false;
  let socket: import('node:net').Socket | undefined;
  for (let i = 0; i < 2; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ port, host: '127.0.0.1', agent }, (res) => {
        socket = req.socket!;
        reused = req.reusedSocket;
        listenersDuring.push(socket.listenerCount('timeout'));
        res.resume();
        res.on('end', () => setImmediate(resolve));
      });
      req.on('error', reject);
    });
  }
  return { listenersDuring, idleTimeout: socket?.timeout, reused };
}

test('ContainerAgent: no per-request time-out listener beyond a plain keep-alive Agent, and a pooled connection idles out after 15 s', async (t) => {
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
  const measured = await twoPooledRequests(port, ours);
  assert.ok(measured.reused, 'the second request reused the pooled connection');
  assert.deepEqual(measured.listenersDuring, reference.listenersDuring, "the connection's timeout listeners during an answer, ours and a plain Agent's");
  assert.equal(measured.idleTimeout, 15_000, 'the idle time-out of a pooled connection');
});
