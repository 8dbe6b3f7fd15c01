import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { BrowserPages } from '../../../src/pages/browser-pages.js';
import { BUILT_IN } from '../../../src/pages/templates.js';
import { RemovedMemory } from '../../../src/routing/removed-memory.js';
import { request } from '../../helpers/client.js';

/**
 * A real server whose every request is a browser's miss: the pages re-read
 * (`reread`, counted and held open until the test lets it finish) and route
 * again, which forwards the targets in `known` (answered 200 here).
 */
async function pagesServer(t: { after: (fn: () => unknown) => void }): Promise<{ port: number; rereads: () => number; finishRead: () => void; waiting: () => number }> {
  const known = new Set<string>();
  let rereads = 0;
  let waiting = 0;
  let finish: () => void = () => {};
  const pages = new BrowserPages({
    pages: BUILT_IN,
    galaxyUrl: undefined,
    pathPrefix: '/interactivetool/ep',
    startingTimeoutMs: 600_000,
    removed: new RemovedMemory(),
    reread: () => {
      rereads++;
      return new Promise<void>((resolve) => {
        finish = () => {
          known.add('/interactivetool/ep/k1/t1/');
          resolve();
        };
      });
    },
    cookieMode: () => false,
  });
  const server = http.createServer((req, res) => {
    waiting++;
    void pages.answerRefusal(req, res, () => {
      if (!known.has(req.url ?? '')) return { refusal: 'unknown-entry-point' };
      res.end('forwarded');
      return undefined;
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  return { port: (server.address() as AddressInfo).port, rereads: () => rereads, finishRead: () => finish(), waiting: () => waiting };
}

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    assert.ok(Date.now() < deadline, 'condition not met within 5 s');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('a browser miss re-reads the map once for all misses meanwhile, then routes again: a row committed a moment ago is found', async (t) => {
  const s = await pagesServer(t);
  const headers = { accept: 'text/html' };
  const answers = [1, 2, 3].map(() => request(s.port, { path: '/interactivetool/ep/k1/t1/', headers }));
  const other = request(s.port, { path: '/interactivetool/ep/k2/t2/', headers });
  await until(() => s.waiting() === 4);
  assert.equal(s.rereads(), 1, 'one read for the four misses');
  s.finishRead();
  for (const answer of await Promise.all(answers)) assert.deepEqual([answer.status, answer.body], [200, 'forwarded']);
  const miss = await other;
  assert.equal(miss.status, 503);
  assert.match(miss.body, /Your tool is starting/);
  // A miss after that read reads again.
  const later = request(s.port, { path: '/interactivetool/ep/k3/t3/', headers });
  await until(() => s.rereads() === 2);
  s.finishRead();
  assert.equal((await later).status, 503);
});
