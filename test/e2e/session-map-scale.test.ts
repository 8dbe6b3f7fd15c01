/**
 * 100,000 sessions: they load and route, changes Galaxy commits are routed,
 * and reloading does not hold up request serving. Galaxy's writer runs in its
 * own process, as in production, so that only the proxy's own work counts
 * against the event loop. The stall bound here is a generous sanity check;
 * test/perf/reload-stall.ts measures the figures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { tempDir } from '../helpers/galaxy-map.js';
import { GalaxyWriterProcess, sessionKey } from '../helpers/galaxy-writer-process.js';
import { startInProcessProxy } from '../helpers/in-process-proxy.js';
import { startUpstream, type Seen } from '../helpers/upstream.js';
import { cookie, request } from '../helpers/client.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';

const SESSIONS = 100_000;
/** Far above what a reload costs (a few ms); far below what reading 100,000 rows on the event loop did. */
const STALL_BOUND_MS = 1000;

test(`${SESSIONS.toLocaleString('en')} sessions load, route, take Galaxy's changes, and reloads do not stall requests`, async (t) => {
  const tmp = tempDir();
  const a = await startUpstream('a');
  const b = await startUpstream('b');
  const path = join(tmp.dir, 'session_map.sqlite');
  const writer = new GalaxyWriterProcess(path);
  t.after(async () => {
    writer.close();
    await a.close();
    await b.close();
    tmp.remove();
  });
  await writer.send({ op: 'fill', count: SESSIONS, host: '127.0.0.1', port: a.port }, 60_000);

  const proxy = await startInProcessProxy(t, { sessionsPath: path });
  assert.equal(proxy.logs.withMsg(MAP_LOG.reloaded)[0]?.sessions, SESSIONS);
  for (const i of [0, SESSIONS / 2, SESSIONS - 1]) {
    const r = await request(proxy.port, { headers: cookie(sessionKey(i)) });
    assert.equal((JSON.parse(r.body) as Seen).upstream, 'a');
  }

  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const reloaded = (sessions: number, update: string) =>
    proxy.logs.next(MAP_LOG.reloaded, 5000, (l) => l.sessions === sessions && l.update === update);

  let next = reloaded(SESSIONS + 1, 'diff');
  await writer.send({ op: 'add', key: 'newcomer', host: '127.0.0.1', port: b.port });
  await next;
  next = reloaded(SESSIONS + 1, 'diff');
  await writer.send({ op: 'update', key: sessionKey(SESSIONS / 2), host: '127.0.0.1', port: b.port });
  await next;
  next = reloaded(SESSIONS, 'diff');
  await writer.send({ op: 'remove', key: sessionKey(7) });
  await next;
  next = reloaded(SESSIONS, 'full');
  await proxy.daemon.reload();
  await next;
  loop.disable();

  const upstreamOf = async (key: string) => {
    const r = await request(proxy.port, { headers: cookie(key) });
    return r.status === 200 ? (JSON.parse(r.body) as Seen).upstream : r.status;
  };
  assert.equal(await upstreamOf('newcomer'), 'b');
  assert.equal(await upstreamOf(sessionKey(SESSIONS / 2)), 'b');
  assert.equal(await upstreamOf(sessionKey(7)), 404);
  assert.equal(await upstreamOf(sessionKey(8)), 'a');
  const stallMs = loop.max / 1e6;
  t.diagnostic(`longest event-loop stall during the reloads: ${stallMs.toFixed(1)} ms`);
  assert.ok(stallMs < STALL_BOUND_MS, `the event loop stalled ${stallMs.toFixed(0)} ms`);
});
