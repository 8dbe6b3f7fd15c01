/**
 * The reloader on its own (no watcher, so nothing but the calls made here
 * triggers a read): what it logs, when it retries by itself, and that the
 * last state written wins over a read that was already under way.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { createLogger } from '../../../src/log.js';
import { InlineMapReader, THREAD_YOUNG_GENERATION_MB, WorkerMapReader, type MapReader } from '../../../src/session-map/reader.js';
import { READER_NICE } from '../../../src/session-map/producer.js';
import { MapReloader, type MapReloaderOptions } from '../../../src/session-map/reloader.js';
import { RouteTable } from '../../../src/routing/route-table.js';
import { MAP_LOG, ReloadReporter } from '../../../src/session-map/reload-report.js';
import { GalaxySqliteWriter, galaxyJson, tempDir } from '../../helpers/galaxy-map.js';
import { LogCapture } from '../../helpers/logs.js';
import { waitUntil } from '../../helpers/wait.js';

/** A reloader of the map `file` in a temp dir; `thread`: read on the reader thread, as the daemon does (default: inline). */
function setup(t: TestContext, file: string, options: MapReloaderOptions = {}, thread = false) {
  const tmp = tempDir();
  const path = join(tmp.dir, file);
  const logs = new LogCapture();
  const table = new RouteTable();
  const report = new ReloadReporter(path, createLogger({ verbose: false, destination: logs.stream }));
  const threadFailed = (err: Error): void => report.threadFailed(err);
  const reader = options.reader ?? (thread ? new WorkerMapReader(path, threadFailed) : undefined);
  const reloader = new MapReloader(path, table, report, { ...options, ...(reader === undefined ? {} : { reader }) });
  t.after(() => {
    reloader.close();
    tmp.remove();
  });
  const ports = (): Record<string, number> => Object.fromEntries(['alice', 'bob', 'carol'].flatMap((k) => {
    const r = table.lookup(k);
    return r === undefined ? [] : [[k, r.port]];
  }));
  return { path, logs, table, reloader, ports };
}

test('a change written while a read is under way is read right after it: the last state written wins', async (t) => {
  // A reader that holds each result until the test lets it go, so that the
  // second write lands while the first read is certainly under way.
  let inner: InlineMapReader | undefined = undefined;
  let gate = Promise.resolve();
  let readDone: () => void = () => {};
  const reader: MapReader = {
    read: async (full) => {
      const update = await inner!.read(full);
      readDone();
      await gate;
      return update;
    },
    close: () => inner?.close(),
  };
  const { path, reloader, ports } = setup(t, 'session_map.sqlite', { reader });
  inner = new InlineMapReader(path);
  const galaxy = new GalaxySqliteWriter(path);
  galaxy.addSession('alice', '127.0.0.1', 8001);
  assert.equal(await reloader.reload(), 'reloaded');

  let open: () => void = () => {};
  gate = new Promise((r) => (open = r));
  const firstRead = new Promise<void>((r) => (readDone = r));
  galaxy.addSession('bob', '127.0.0.1', 8002);
  const first = reloader.reload();
  await firstRead; // the reader has seen alice and bob, and waits
  galaxy.updateSession('alice', '127.0.0.1', 8003);
  const second = reloader.reload(); // asked for while the first is under way
  open();
  await first;
  await second;
  assert.deepEqual(ports(), { alice: 8003, bob: 8002 });
});

test('start-up race: no file, then no table, then the first row: one info line, no warning, then routed', async (t) => {
  const { path, logs, reloader, ports } = setup(t, 'session_map.sqlite');
  assert.equal(await reloader.reload(), 'failed');
  new Database(path).close(); // Galaxy has opened the database, not created the table yet
  assert.equal(await reloader.reload(), 'failed');
  new GalaxySqliteWriter(path).addSession('alice', '127.0.0.1', 8001);
  assert.equal(await reloader.reload(), 'reloaded');
  assert.deepEqual(ports(), { alice: 8001 });
  const notReady = logs.withMsg(MAP_LOG.notReady);
  assert.deepEqual(notReady.map((l) => [l.level, l.reason]), [['info', 'missing'], ['info', 'no-table']]);
  assert.equal(logs.lines.filter((l) => l.level === 'warn').length, 0);
});

test('a broken map is reported once per streak, the last good map stays, and recovery is logged', async (t) => {
  const { path, logs, reloader, ports } = setup(t, 'session_map.json');
  writeFileSync(path, galaxyJson([['alice', '127.0.0.1', 8001]]));
  await reloader.reload();
  writeFileSync(path, '[1, 2]');
  for (let i = 0; i < 3; i++) assert.equal(await reloader.reload(true), 'failed');
  assert.deepEqual(ports(), { alice: 8001 });
  const warnings = logs.withMsg(MAP_LOG.unreadable);
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0].reason, 'corrupt');
  assert.equal(warnings[0].sessions, 1);
  writeFileSync(path, galaxyJson([['alice', '127.0.0.1', 8001], ['bob', '127.0.0.1', 8002]]));
  assert.equal(await reloader.reload(), 'reloaded');
  assert.deepEqual(ports(), { alice: 8001, bob: 8002 });
  assert.equal(logs.withMsg(MAP_LOG.readableAgain).length, 1);
});

test('a half-written JSON file is retried by itself: the complete file is routed without another event', async (t) => {
  const { path, logs, reloader, ports } = setup(t, 'session_map.json');
  writeFileSync(path, galaxyJson([['alice', '127.0.0.1', 8001]]));
  await reloader.reload();
  const full = galaxyJson([['alice', '127.0.0.1', 8001], ['bob', '127.0.0.1', 8002]]);
  writeFileSync(path, full.slice(0, 20));
  assert.equal(await reloader.reload(), 'failed');
  const reloaded = logs.next(MAP_LOG.reloaded, 2000);
  writeFileSync(path, full); // nobody calls reload(): the retry timer must
  const retried = await reloaded;
  assert.equal(retried.sessions, 2);
  assert.equal(retried.update, 'diff', 'the store kept its last answer through the failure');
  assert.deepEqual(ports(), { alice: 8001, bob: 8002 });
});

test('a database locked by a writer is reported busy and retried by itself once the lock goes, reading only what changed', async (t) => {
  const { path, logs, reloader, ports } = setup(t, 'session_map.sqlite');
  const galaxy = new GalaxySqliteWriter(path);
  galaxy.addSession('alice', '127.0.0.1', 8001);
  await reloader.reload();
  const holder = new Database(path);
  t.after(() => holder.close());
  holder.exec('BEGIN EXCLUSIVE');
  holder.prepare("INSERT INTO gxproxy2 (key, host, port) VALUES ('bob', '127.0.0.1', 8002)").run();
  assert.equal(await reloader.reload(true), 'failed');
  assert.equal(logs.withMsg(MAP_LOG.unreadable)[0]?.reason, 'busy');
  assert.deepEqual(ports(), { alice: 8001 });
  const reloaded = logs.next(MAP_LOG.reloaded, 2000);
  holder.exec('COMMIT');
  const retried = await reloaded;
  assert.equal(retried.sessions, 2);
  assert.equal(retried.update, 'diff', 'the store kept its last answer through the failure');
  assert.deepEqual(ports(), { alice: 8001, bob: 8002 });
});

test('updates: a full rebuild at start and when forced, a diff for a commit, nothing for a commit that changes no route', async (t) => {
  const { path, logs, reloader, ports } = setup(t, 'session_map.sqlite');
  const galaxy = new GalaxySqliteWriter(path);
  galaxy.addSession('alice', '127.0.0.1', 8001);
  galaxy.addSession('bob', '127.0.0.1', 8002);
  assert.equal(await reloader.reload(), 'reloaded');
  galaxy.addSession('carol', '127.0.0.1', 8003);
  galaxy.addSession('alice', '127.0.0.1', 8004); // moved to the end of the table
  galaxy.removeSession('bob');
  assert.equal(await reloader.reload(), 'reloaded');
  assert.deepEqual(ports(), { alice: 8004, carol: 8003 });
  galaxy.exec(`UPDATE gxproxy2 SET container_ids = '["other"]' WHERE key = 'carol'`);
  assert.equal(await reloader.reload(), 'unchanged');
  assert.equal(await reloader.reload(), 'unchanged');
  assert.equal(await reloader.reload(true), 'reloaded');
  const lines = logs.withMsg(MAP_LOG.reloaded);
  assert.deepEqual(lines.map((l) => [l.update, l.sessions, l.format]), [
    ['full', 2, 'sqlite gxproxy2'],
    ['diff', 2, 'sqlite gxproxy2'],
    ['full', 2, 'sqlite gxproxy2'],
  ]);
  assert.ok(lines.every((l) => typeof l.ms === 'number'));
});

test('skipped entries: one warning with counts per reason, again only when they change', async (t) => {
  const { path, logs, reloader } = setup(t, 'session_map.sqlite');
  const galaxy = new GalaxySqliteWriter(path);
  galaxy.addSession('alice', '127.0.0.1', 8001);
  galaxy.exec("INSERT INTO gxproxy2 (key, host, port) VALUES ('nohost', NULL, 8002), ('bad', 'h', 0)");
  await reloader.reload();
  galaxy.addSession('bob', '127.0.0.1', 8003);
  await reloader.reload();
  galaxy.exec("INSERT INTO gxproxy2 (key, host, port) VALUES ('textport', 'h', 'x')");
  await reloader.reload();
  const warnings = logs.withMsg(MAP_LOG.skipped);
  assert.deepEqual(
    warnings.map((w) => [w.count, w.skipped]),
    [
      [2, { 'missing host': 1, 'port out of range': 1 }],
      [3, { 'missing host': 1, 'non-numeric port': 1, 'port out of range': 1 }],
    ],
  );
});

test('if the reader thread dies, reads carry on on the main thread (one error, then a full rebuild)', async (t) => {
  const { path, logs, reloader, ports } = setup(t, 'session_map.sqlite', {}, true);
  const galaxy = new GalaxySqliteWriter(path);
  galaxy.addSession('alice', '127.0.0.1', 8001);
  await reloader.reload();
  galaxy.addSession('bob', '127.0.0.1', 8002);
  assert.equal(await reloader.reload(), 'reloaded');
  // Stand-in for a crash of the thread (a bug, or running out of memory).
  const thread = (reloader as unknown as { reader: { worker: Worker } }).reader.worker;
  const failed = logs.next(MAP_LOG.threadFailed, 5000);
  await thread.terminate();
  await failed;
  galaxy.addSession('carol', '127.0.0.1', 8003);
  assert.equal(await reloader.reload(), 'reloaded');
  assert.deepEqual(ports(), { alice: 8001, bob: 8002, carol: 8003 });
  assert.deepEqual(logs.withMsg(MAP_LOG.reloaded).map((l) => l.update), ['full', 'diff', 'full']);
  assert.equal(logs.withMsg(MAP_LOG.threadFailed).length, 1);
});

/** The nice value of each thread of this process (Linux: /proc/self/task/TID/stat, field 19). */
function threadNices(): number[] {
  return readdirSync('/proc/self/task').flatMap((tid) => {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])];
    } catch {
      return []; // the thread ended meanwhile
    }
  });
}

/** A reloader of a two-session map (alice, bob) that reads on the reader thread. */
async function onReaderThread(t: TestContext) {
  const { path, reloader, ports } = setup(t, 'session_map.sqlite', {}, true);
  const galaxy = new GalaxySqliteWriter(path);
  galaxy.addSession('alice', '127.0.0.1', 8001);
  await reloader.reload();
  galaxy.addSession('bob', '127.0.0.1', 8002);
  await reloader.reload();
  return { galaxy, reloader, ports };
}

test('the reader thread runs at a lower CPU priority than requests (Linux), so that on a busy core reads yield to them', async (t) => {
  if (!existsSync('/proc/self/task')) return t.skip('no /proc/self/task on this system');
  const own = Number(readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]?.split(' ')[16]);
  const lowered = Math.min(19, own + READER_NICE);
  const before = threadNices().filter((n) => n === lowered).length;
  const { ports } = await onReaderThread(t);
  await waitUntil(`a thread at nice ${lowered}`, () => threadNices().filter((n) => n === lowered).length > before || undefined, { timeoutMs: 10_000, everyMs: 20 });
  assert.equal(threadNices().filter((n) => n === own).length >= 1, true, 'the other threads keep the process priority');
  assert.deepEqual(ports(), { alice: 8001, bob: 8002 });
});

test("the reader thread's young generation is held small (V8 resourceLimits): a whole read of a large map would grow it to 48 MiB and keep it", async (t) => {
  const { galaxy, reloader, ports } = await onReaderThread(t);
  const thread = (reloader as unknown as { reader: { worker: Worker } }).reader.worker;
  assert.equal(thread.resourceLimits?.maxYoungGenerationSizeMb, THREAD_YOUNG_GENERATION_MB);
  // And it reads: a whole read (forced) on the thread with that limit.
  galaxy.addSession('carol', '127.0.0.1', 8003);
  assert.equal(await reloader.reload(true), 'reloaded');
  assert.deepEqual(ports(), { alice: 8001, bob: 8002, carol: 8003 });
});
