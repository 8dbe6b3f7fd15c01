import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { GalaxySqliteWriter, tempDir } from './helpers/galaxy-map.js';
import { mappedProxy, upstreamFor } from './helpers/fixture.js';
import { startTestProxy, type TestProxy } from './helpers/daemon.js';
import { cookie, request } from './helpers/client.js';
import { MapWatcher } from '../src/session-map/watcher.js';

const RELOADED = 'session map reloaded';
const KEPT = 'session map unreadable; keeping the last good map';

async function proxyOn(t: TestContext, sessionsPath: string, pollIntervalMs = 1000): Promise<TestProxy> {
  const proxy = await startTestProxy({ sessionsPath, pollIntervalMs });
  t.after(() => proxy.close());
  return proxy;
}

async function statusFor(proxy: TestProxy, key: string): Promise<number> {
  return (await request(proxy.port, { headers: cookie(key) })).status;
}

/** Runs `write`, then waits for the reload that shows `sessions` routes; returns the delay in ms. */
async function timedReload(proxy: TestProxy, sessions: number, write: () => void): Promise<number> {
  const reloaded = proxy.logs.next(RELOADED, 1000, (l) => l.sessions === sessions);
  const started = performance.now();
  write();
  await reloaded;
  return performance.now() - started;
}

test('start-up race: no file yet, then Galaxy creates it; the first session is routed within 1 s', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const a = await upstreamFor(t, 'a');
  const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
  const proxy = await proxyOn(t, map.path);
  const waiting = proxy.logs.withMsg('session map not ready yet; routing nothing until Galaxy writes it');
  assert.equal(waiting.length, 1);
  assert.equal(waiting[0]!.reason, 'missing');
  assert.equal(waiting[0]!.level, 'info');
  assert.equal(await statusFor(proxy, 'alice'), 404);
  const ms = await timedReload(proxy, 1, () => map.addSession('alice', '127.0.0.1', a.port));
  t.diagnostic(`first session routed ${ms.toFixed(1)} ms after Galaxy's commit`);
  assert.equal(await statusFor(proxy, 'alice'), 200);
  assert.equal(proxy.logs.withMsg(KEPT).length, 0, 'the start-up race is not a warning');
});

test('start-up race: the database exists without the table', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const a = await upstreamFor(t, 'a');
  const path = join(tmp.dir, 'session_map.sqlite');
  new Database(path).close(); // an empty database file
  const proxy = await proxyOn(t, path);
  const waiting = proxy.logs.withMsg('session map not ready yet; routing nothing until Galaxy writes it');
  assert.equal(waiting[0]?.reason, 'no-table');
  const map = new GalaxySqliteWriter(path);
  await timedReload(proxy, 1, () => map.addSession('alice', '127.0.0.1', a.port));
  assert.equal(await statusFor(proxy, 'alice'), 200);
});

test('every committed insert, update and delete is routed within 1 s', async (t) => {
  const a = await upstreamFor(t, 'a');
  const b = await upstreamFor(t, 'b');
  const proxy = await mappedProxy(t, { alice: a.port });
  const map = proxy.map;
  const delays: number[] = [];
  delays.push(await timedReload(proxy, 2, () => map.addSession('bob', '127.0.0.1', a.port)));
  assert.equal(JSON.parse((await request(proxy.port, { headers: cookie('bob') })).body).upstream, 'a');
  delays.push(await timedReload(proxy, 2, () => map.updateSession('bob', '127.0.0.1', b.port)));
  assert.equal(JSON.parse((await request(proxy.port, { headers: cookie('bob') })).body).upstream, 'b');
  delays.push(await timedReload(proxy, 1, () => map.removeSession('bob')));
  assert.equal(await statusFor(proxy, 'bob'), 404);
  assert.equal(await statusFor(proxy, 'alice'), 200);
  t.diagnostic(`reload after commit: ${delays.map((d) => d.toFixed(1)).join(', ')} ms`);
});

test('a file event that changes nothing committed does not reload the map', async (t) => {
  const a = await upstreamFor(t, 'a');
  const proxy = await mappedProxy(t, { alice: a.port });
  const map = proxy.map;
  const before = proxy.logs.withMsg(RELOADED).length;
  assert.equal(await proxy.daemon.reloader?.reload(), 'unchanged');
  writeFileSync(`${map.path}.lock`, ''); // Galaxy's lock file alone commits nothing
  unlinkSync(`${map.path}.lock`);
  await timedReload(proxy, 2, () => map.addSession('bob', '127.0.0.1', a.port));
  assert.equal(proxy.logs.withMsg(RELOADED).length, before + 1, 'one commit, one reload');
});

test('a corrupt or deleted map keeps the last good map, with one warning; a good file is picked up again', async (t) => {
  const a = await upstreamFor(t, 'a');
  const proxy = await mappedProxy(t, { alice: a.port });
  const map = proxy.map;

  const warned = proxy.logs.next(KEPT, 2000);
  const garbage = join(proxy.dir, 'garbage');
  writeFileSync(garbage, 'this is not an SQLite database, just some text that is long enough. '.repeat(100));
  renameSync(garbage, map.path);
  const warning = await warned;
  assert.equal(warning.level, 'warn');
  assert.equal(warning.reason, 'corrupt');
  assert.equal(warning.sessions, 1);
  assert.equal(await statusFor(proxy, 'alice'), 200, 'still routed from the last good map');

  unlinkSync(map.path);
  const gone = await proxy.logs.next(KEPT, 2000, (l) => l.reason === 'missing');
  assert.equal(gone.sessions, 1);
  assert.equal(await statusFor(proxy, 'alice'), 200);

  const fresh = new GalaxySqliteWriter(map.path);
  await timedReload(proxy, 2, () => {
    fresh.addSession('alice', '127.0.0.1', a.port);
    fresh.addSession('bob', '127.0.0.1', a.port);
  });
  assert.equal(await statusFor(proxy, 'bob'), 200);
  assert.equal(proxy.logs.withMsg(KEPT).length, 2, 'one warning per failure, not one per event');
});

test('a writer holding the lock: the read gives up fast, the old map keeps routing, the commit is picked up', async (t) => {
  const a = await upstreamFor(t, 'a');
  const proxy = await mappedProxy(t, { alice: a.port });
  const map = proxy.map;
  const writer = new Database(map.path);
  t.after(() => writer.close());
  writer.exec('BEGIN EXCLUSIVE');
  writer.prepare("INSERT INTO gxproxy2 (key, host, port) VALUES ('bob', '127.0.0.1', ?)").run(a.port);
  const started = performance.now();
  assert.equal(await proxy.daemon.reloader?.reload(true), 'failed');
  assert.ok(performance.now() - started < 500, 'a locked database does not block the proxy');
  assert.equal(proxy.logs.withMsg(KEPT).at(-1)?.reason, 'busy');
  assert.equal(await statusFor(proxy, 'alice'), 200);
  const reloaded = proxy.logs.next(RELOADED, 1000, (l) => l.sessions === 2);
  writer.exec('COMMIT');
  await reloaded;
  assert.equal(await statusFor(proxy, 'bob'), 200);
});

test('a map directory that cannot be watched yet is polled, and watched once it exists', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const a = await upstreamFor(t, 'a');
  const dir = join(tmp.dir, 'database');
  const proxy = await proxyOn(t, join(dir, 'session_map.sqlite'), 50);
  assert.equal(proxy.logs.withMsg('proxy listening')[0]!.watching, false);
  mkdirSync(dir);
  const map = new GalaxySqliteWriter(join(dir, 'session_map.sqlite'));
  await timedReload(proxy, 1, () => map.addSession('alice', '127.0.0.1', a.port));
  assert.equal(await statusFor(proxy, 'alice'), 200);
});

test('the watcher folds a burst of file events into one notification', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'session_map.sqlite');
  let notified = 0;
  let onNotify: () => void = () => {};
  const watcher = new MapWatcher(path, { pollIntervalMs: 3_600_000, debounceMs: 30 }, () => {
    notified++;
    onNotify();
  });
  t.after(() => watcher.close());
  assert.ok(watcher.watching);
  // Bounded waits; the pending timer also keeps the loop alive (the watcher itself does not).
  const next = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no notification within 2 s')), 2000);
      onNotify = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  let first = next();
  for (let i = 0; i < 20; i++) writeFileSync(path, String(i)); // lock, journal, commit … in a few ms
  await first;
  // A later event in another file of the map's family arrives after the burst's notification.
  first = next();
  writeFileSync(`${path}-journal`, 'x');
  await first;
  assert.equal(notified, 2, `20 writes and 1 later write gave ${notified} notifications`);
  // Files that do not belong to the map are ignored.
  writeFileSync(join(tmp.dir, 'other.txt'), 'x');
  first = next();
  writeFileSync(`${path}.lock`, '');
  await first;
  assert.equal(notified, 3);
});
