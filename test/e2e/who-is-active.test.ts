import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { RoutesReport } from '../../src/admin/routes.js';
import { ANSWERS } from '../../src/http/answers.js';
import { sessionTag } from '../../src/log.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';
import { cookie, request } from '../helpers/client.js';
import { KEY_TYPE, SqlAlchemyItWriter } from '../helpers/galaxy-it-map.js';
import { tempDir } from '../helpers/galaxy-map.js';
import { startInProcessProxy } from '../helpers/in-process-proxy.js';
import { IT_PREFIX } from '../helpers/it-proxy.js';
import { parseMetrics } from '../helpers/prometheus.js';
import { upstreamFor } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

const ALICE = 'a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1';
const BOB = 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0';

async function routes(metricsPort: number, query = ''): Promise<RoutesReport> {
  const r = await request(metricsPort, { path: `/routes${query}` });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
  return JSON.parse(r.body) as RoutesReport;
}

async function gieSetup(t: TestContext, extra: { idleReportAfterMs?: number } = {}) {
  const upstream = await upstreamFor(t, 'a');
  const proxy = await startInProcessProxy(t, { sessions: { [ALICE]: upstream.port, [BOB]: upstream.port }, metricsPort: 0, metricsIp: '127.0.0.1', ...extra });
  const metricsPort = proxy.daemon.metricsAddress?.port ?? 0;
  return { proxy, metricsPort, upstream };
}

test('/routes: one object per GIE session, named by its log tag (never the cookie), with its target, when it appeared and when it was last active', async (t) => {
  const { proxy, metricsPort, upstream } = await gieSetup(t);
  const before = await routes(metricsPort);
  assert.equal(before.routes.length, 2);
  for (const r of before.routes) {
    assert.equal(r.lastActive, null, 'no traffic yet');
    assert.equal(r.webSockets, 0);
    assert.equal(r.target, `127.0.0.1:${upstream.port}`);
    assert.ok(Math.abs(Date.parse(r.appeared) - Date.now()) < 5000, r.appeared);
  }
  assert.equal((await request(proxy.port, { headers: cookie(ALICE) })).status, 200);
  const after = await routes(metricsPort);
  const alice = after.routes.find((r) => r.session === sessionTag(ALICE));
  const bob = after.routes.find((r) => r.session === sessionTag(BOB));
  assert.ok(alice !== undefined && bob !== undefined, JSON.stringify(after));
  assert.notEqual(alice.lastActive, null, 'a request makes its session active');
  assert.ok(Math.abs(Date.parse(alice.lastActive ?? '') - Date.now()) < 3000, String(alice.lastActive));
  assert.equal(bob.lastActive, null);
  const text = JSON.stringify(after);
  assert.ok(!text.includes(ALICE) && !text.includes(BOB), 'no session cookie in /routes');
});

test('/routes: an open WebSocket is counted on its session, and its traffic keeps the session active (looked at once a second)', async (t) => {
  const { proxy, metricsPort } = await gieSetup(t);
  const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/jupyter/api/kernels/1/channels`, { headers: cookie(ALICE) });
  t.after(() => ws.terminate());
  // The stand-in container greets at once: its message may come in the same chunk as the 101.
  await once(ws, 'message');
  const open = await routes(metricsPort);
  const alice = () => open.routes.find((r) => r.session === sessionTag(ALICE));
  assert.equal(alice()?.webSockets, 1);
  const opened = Date.parse(alice()?.lastActive ?? '');
  // Messages only (no HTTP request): the sweep must see the bytes move.
  const moved = await waitUntil(
    'the WebSocket traffic to move lastActive on',
    async () => {
      ws.send('ping');
      const now = (await routes(metricsPort)).routes.find((r) => r.session === sessionTag(ALICE));
      return now !== undefined && Date.parse(now.lastActive ?? '') > opened && now;
    },
    { timeoutMs: 5000, everyMs: 200 },
  );
  assert.equal(moved.webSockets, 1);
  ws.close();
  await once(ws, 'close');
  await waitUntil('the WebSocket count to drop', async () => (await routes(metricsPort)).routes.every((r) => r.webSockets === 0));
});

test('/routes?inactive_since= takes a duration or an ISO time, lists the routes idle since before it, and refuses anything else with 400', async (t) => {
  const { proxy, metricsPort } = await gieSetup(t);
  assert.equal((await request(proxy.port, { headers: cookie(ALICE) })).status, 200);
  // Everything appeared or was active within the last hour.
  assert.deepEqual((await routes(metricsPort, '?inactive_since=1h')).routes, []);
  assert.deepEqual((await routes(metricsPort, '?inactive_since=2d')).routes, []);
  // A time ahead of now: every route is idle since before it.
  const future = new Date(Date.now() + 60_000).toISOString();
  const all = await routes(metricsPort, `?inactive_since=${encodeURIComponent(future)}`);
  assert.equal(all.routes.length, 2);
  assert.equal(all.inactiveSince, future);
  for (const bad of ['yesterday', '1w', '-1h', '2026-13-45', '10', 'P1D']) {
    const r = await request(metricsPort, { path: `/routes?inactive_since=${encodeURIComponent(bad)}` });
    assert.equal(r.status, 400, bad);
    assert.equal(r.body, ANSWERS['admin-bad-query'].body);
  }
});

test('gie_proxy_routes_idle counts the routes with no traffic for longer than --idle-report-after', async (t) => {
  const started = Date.now();
  const { proxy, metricsPort } = await gieSetup(t, { idleReportAfterMs: 1000 });
  const scrapeIdle = async (): Promise<number | undefined> => parseMetrics((await request(metricsPort, { path: '/metrics' })).body).get('gie_proxy_routes_idle');
  const first = await scrapeIdle();
  // On a loaded machine the first scrape may come after the second is up.
  if (Date.now() - started < 900) assert.equal(first, 0, 'both appeared just now');
  // Alice keeps busy; Bob says nothing: after a little over a second, Bob alone is idle.
  await waitUntil(
    'bob alone to count as idle',
    async () => {
      assert.equal((await request(proxy.port, { headers: cookie(ALICE) })).status, 200);
      return (await scrapeIdle()) === 1;
    },
    { timeoutMs: 6000, everyMs: 200 },
  );
  const idle = (await routes(metricsPort, '?inactive_since=1s')).routes;
  assert.deepEqual(
    idle.map((r) => r.session),
    [sessionTag(BOB)],
  );
});

test('/routes for Interactive Tools: one object per entry point, by key and key type, never the token', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const upstream = await upstreamFor(t, 'jupyter');
  const map = new SqlAlchemyItWriter(join(tmp.dir, 'interactivetools_map.sqlite'));
  t.after(() => map.close());
  const token = 'tok1a1p13jnahscj0000000000000000';
  map.saveMany([
    { key: 'ep1', token, host: '127.0.0.1', port: upstream.port },
    { key: 'ep2', token: 'tok2b2p13jnahscj0000000000000000', host: '127.0.0.1', port: upstream.port },
  ]);
  const proxy = await startInProcessProxy(t, { sessionsPath: map.path, pathPrefix: IT_PREFIX, metricsPort: 0, metricsIp: '127.0.0.1' });
  const metricsPort = proxy.daemon.metricsAddress?.port ?? 0;
  assert.equal((await request(proxy.port, { path: `${IT_PREFIX}/ep1/${token}/` })).status, 200);
  const report = await routes(metricsPort);
  assert.deepEqual(
    report.routes.map((r) => [r.key, r.keyType, r.lastActive === null]).sort(),
    [
      ['ep1', KEY_TYPE, false],
      ['ep2', KEY_TYPE, true],
    ],
  );
  const text = JSON.stringify(report);
  assert.ok(!text.includes('tok1') && !text.includes('tok2'), 'no token in /routes');
  // A row Galaxy removes leaves /routes at the next read.
  const done = proxy.logs.next(MAP_LOG.reloaded);
  map.remove('ep2');
  await done;
  assert.deepEqual((await routes(metricsPort)).routes.map((r) => r.key), ['ep1']);
});
