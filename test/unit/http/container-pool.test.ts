import { test } from 'node:test';
import assert from 'node:assert/strict';
import http, { type ClientRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ProxyDeadlines } from '../../../src/http/container-pool.js';

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
