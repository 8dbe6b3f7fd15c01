import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createLogger } from '../../src/log.js';
import { EntryPointTable } from '../../src/routing/entry-point-table.js';
import { UpdateMaker } from '../../src/session-map/producer.js';
import { RouteTable } from '../../src/routing/route-table.js';
import { PG_LOG, POSTGRES_TUNING, type PostgresStatus, type PostgresTuning } from '../../src/session-map/postgres/connection.js';
import { PostgresMapStore, postgresStoreKind } from '../../src/session-map/postgres/store.js';
import { installTrigger } from '../../src/session-map/postgres/trigger.js';
import { parsePostgresUrl } from '../../src/session-map/postgres/url.js';
import { InlineMapReader } from '../../src/session-map/reader.js';
import { MAP_LOG, ReloadReporter } from '../../src/session-map/reload-report.js';
import { MapReloader } from '../../src/session-map/reloader.js';
import type { ChangeWatch } from '../../src/session-map/store.js';
import pg from 'pg';
import { request } from '../helpers/client.js';
import { startInProcessProxy } from '../helpers/in-process-proxy.js';
import { GALAXY_CREATE_TABLE, GalaxyPgWriter } from '../helpers/galaxy-pg-writer.js';
import { LogCapture } from '../helpers/logs.js';
import { whole } from '../helpers/map-read.js';
import { injectFault, PG_FAULTS, PgCluster, urlForFault } from '../helpers/postgres.js';
import { TcpRelay } from '../helpers/tcp-relay.js';
import { waitUntil } from '../helpers/wait.js';

/**
 * The PostgreSQL store in process (store, watch, reloader, route table as the
 * daemon wires them), against a real throw-away cluster: what it reads, when
 * it notices a change, and what it does when the database goes away.
 */

const cluster = new PgCluster({ tcp: true });
after(() => cluster.destroy());

/** Quick timings, so that the outage cases take a few seconds, not a minute. */
const FAST: PostgresTuning = { ...POSTGRES_TUNING, heartbeatMs: 300, statementTimeoutMs: 1000, connectTimeoutMs: 1000, backoffMinMs: 50, backoffMaxMs: 500, refusedBackoffMinMs: 100, refusedBackoffMaxMs: 400 };

interface Running {
  table: { lookup(key: string): { port: number } | undefined; readonly size: number };
  watch: ChangeWatch;
  logs: LogCapture;
  status(): PostgresStatus;
}

function startStore(t: { after: (fn: () => unknown) => void }, url: string, pollIntervalMs: number): Running {
  const logs = new LogCapture();
  const log = createLogger({ verbose: false, destination: logs.stream });
  const kind = postgresStoreKind(FAST);
  const entryPoints = new EntryPointTable();
  const label = parsePostgresUrl(url).label;
  const reloader = new MapReloader(url, new RouteTable(), new ReloadReporter(label, log), {
    reader: new InlineMapReader(url, kind),
    entryPoints,
  });
  // The entry point of `key` (Galaxy's key type), as the Interactive Tools router finds it.
  const table = {
    lookup: (key: string) => entryPoints.lookup(key)?.[0],
    get size() {
      return entryPoints.size;
    },
  };
  void reloader.reload(true);
  const watch = kind.watch(url, { pollIntervalMs, debounceMs: 0, log }, () => void reloader.reload());
  t.after(() => {
    watch.close();
    reloader.close();
  });
  return { table, watch, logs, status: () => watch.status?.() as PostgresStatus };
}

function writerFor(t: { after: (fn: () => unknown) => void }, db: string): GalaxyPgWriter {
  const writer = new GalaxyPgWriter(cluster.config(db));
  t.after(() => writer.close());
  return writer;
}

const routedTo = (r: Running, key: string, port: number): Promise<true> =>
  waitUntil(`${key} routed to port ${port}`, () => r.table.lookup(key)?.port === port || undefined, { timeoutMs: 15_000, everyMs: 5 });

describe('PostgreSQL store', () => {
  test('with the README trigger, a Galaxy save is routed on its notification, and a removal too', async (t) => {
    if (!(await cluster.ready(t))) return;
    const db = await cluster.createDatabase();
    const writer = writerFor(t, db);
    await writer.save({ key: 'first', token: 't1', host: '127.0.0.1', port: 1001 });
    await writer.installReadmeTrigger();
    const r = startStore(t, cluster.url(db), 0);
    await routedTo(r, 'first', 1001);
    await writer.save({ key: 'second', token: 't2', host: '127.0.0.1', port: 1002 });
    await routedTo(r, 'second', 1002);
    await writer.remove('first');
    await waitUntil('first removed', () => r.table.lookup('first') === undefined);
    assert.ok(r.status().notifications >= 2);
    assert.equal(r.status().connected, true);
  });

  test('without any trigger the poll picks changes up (digest of the table, full read only when it moved)', async (t) => {
    if (!(await cluster.ready(t))) return;
    const db = await cluster.createDatabase();
    const writer = writerFor(t, db);
    await writer.save({ key: 'a', token: 't', host: '127.0.0.1', port: 2001 });
    const r = startStore(t, cluster.url(db), 100);
    await routedTo(r, 'a', 2001);
    await writer.save({ key: 'a', token: 't', host: '127.0.0.1', port: 2002 });
    await routedTo(r, 'a', 2002);
    assert.equal(r.status().changeDetection, 'row-versions');
    assert.equal(r.status().notifications, 0);
  });

  test('our trigger: one notification per Galaxy transaction, and the poll reads the counter', async (t) => {
    if (!(await cluster.ready(t))) return;
    const db = await cluster.createDatabase();
    const location = parsePostgresUrl(cluster.url(db));
    const report = await installTrigger(location);
    assert.equal(report.tableCreated, true);
    const again = await installTrigger(location);
    assert.equal(again.tableCreated, false);
    const writer = writerFor(t, db);
    const r = startStore(t, cluster.url(db), 0);
    await waitUntil('connected', () => r.status().connected);
    await writer.save({ key: 'k1', token: 't', host: '127.0.0.1', port: 3001 });
    await routedTo(r, 'k1', 3001);
    await writer.bulkInsert(500, '127.0.0.1', 3002);
    await routedTo(r, 'bulk499', 3002);
    assert.equal(r.status().changeDetection, 'counter');
    await waitUntil('two notifications', () => r.status().notifications === 2 || undefined);
    const { rows } = await cluster.query<{ version: string }>('SELECT version::text FROM gxitproxy_version', [], db);
    assert.equal(rows[0]?.version, '3'); // DELETE + INSERT of the save, INSERT of the bulk
  });

  test('the table created after the store started is read (poll), then followed', async (t) => {
    if (!(await cluster.ready(t))) return;
    const db = await cluster.createDatabase();
    const r = startStore(t, cluster.url(db), 100);
    await r.logs.waitFor((l) => l.msg === MAP_LOG.notReady, 5000);
    const writer = writerFor(t, db);
    await writer.save({ key: 'late', token: 't', host: '127.0.0.1', port: 4001 });
    await routedTo(r, 'late', 4001);
  });

  for (const fault of PG_FAULTS) {
    test(`${fault}: the last good map keeps routing, one warning, and the change made meanwhile is routed after`, async (t) => {
      if (!(await cluster.ready(t))) return;
      const db = await cluster.createDatabase();
      const writer = writerFor(t, db);
      await writer.save({ key: 'before', token: 't', host: '127.0.0.1', port: 5001 });
      await writer.installReadmeTrigger();
      const { url, relay } = await urlForFault(t, cluster, db, fault);
      const r = startStore(t, url, 0);
      await routedTo(r, 'before', 5001);
      const lost = r.logs.next(PG_LOG.lost, 15_000);
      const back = r.logs.next(PG_LOG.back, 30_000);
      await injectFault(cluster, fault, db, relay, () => assert.equal(r.table.lookup('before')?.port, 5001));
      await lost;
      assert.equal(r.table.lookup('before')?.port, 5001, 'the last good map is kept');
      // The change made while the store is away: no notification reaches it.
      const during = new GalaxyPgWriter(cluster.config(db));
      t.after(() => during.close());
      await during.save({ key: 'during', token: 't', host: '127.0.0.1', port: 5002 });
      relay?.restore();
      await back;
      await routedTo(r, 'during', 5002).catch((err: Error) => {
        throw new Error(`${err.message} ${JSON.stringify(r.status())}\n${r.logs.lines.map((l) => JSON.stringify(l)).join('\n')}`);
      });
      assert.equal(r.table.lookup('before')?.port, 5001);
      assert.equal(r.logs.withMsg(PG_LOG.lost).length, 1);
      assert.equal(r.status().reconnects, 1);
    });
  }

  test('down at start: it keeps trying and reads the map once the database answers', async (t) => {
    if (!(await cluster.ready(t))) return;
    const db = await cluster.createDatabase();
    const writer = writerFor(t, db);
    await writer.save({ key: 'x', token: 't', host: '127.0.0.1', port: 6001 });
    await writer.close();
    const relay = new TcpRelay(cluster.port);
    await relay.start();
    t.after(() => relay.close());
    relay.blackHole();
    const r = startStore(t, cluster.tcpUrl(db, 'postgres', undefined, relay.port), 0);
    await r.logs.waitFor((l) => l.msg === PG_LOG.unreachable, 5000);
    assert.equal(r.table.size, 0);
    relay.restore();
    await routedTo(r, 'x', 6001);
  });

  test('a permanent cause is said once per cause: no role, an outage (the warning), no role again, no database, then connected', async (t) => {
    if (!(await cluster.ready(t))) return;
    const relay = new TcpRelay(cluster.port);
    await relay.start();
    t.after(() => relay.close());
    const role = `ghost_${process.pid}`;
    const db = `later_${process.pid}`;
    const r = startStore(t, cluster.tcpUrl(db, role, undefined, relay.port), 100);
    const said = (): [unknown, unknown][] => r.logs.lines.filter((l) => l.level !== 'info' || l.msg === PG_LOG.connected).map((l) => [l.msg, l.reason]);
    const refused = (reason: string): Promise<unknown> => r.logs.waitFor((l) => l.msg === PG_LOG.refused && l.reason === reason && said().length > seen, 10_000);
    let seen = 0;
    await refused('no-role');
    assert.equal(r.status().problem?.reason, 'no-role');
    // An outage after it is the usual warning, and no problem in /health.
    seen = said().length;
    relay.blackHole();
    await r.logs.waitFor((l) => l.msg === PG_LOG.unreachable, 10_000);
    assert.equal(r.status().problem, null);
    seen = said().length;
    relay.restore();
    await refused('no-role');
    seen = said().length;
    await cluster.query(`CREATE ROLE ${role} LOGIN`);
    await refused('no-database');
    assert.match(r.status().problem?.message ?? '', new RegExp(`database "${db}" does not exist: create it \\(createdb ${db}\\)`));
    await cluster.query(`CREATE DATABASE ${db} OWNER ${role}`);
    // Galaxy's table and the role's right to read it in one transaction: the
    // proxy connects as soon as the database exists, and a read between the
    // two would rightly log a permission failure this test is not about.
    await cluster.query(`${GALAXY_CREATE_TABLE}; GRANT SELECT ON gxitproxy TO ${role}`, [], db);
    const writer = writerFor(t, db);
    await writer.save({ key: 'fixed', token: 't', host: '127.0.0.1', port: 6002 });
    await routedTo(r, 'fixed', 6002);
    assert.equal(r.status().problem, null);
    assert.deepEqual(said(), [
      [PG_LOG.refused, 'no-role'],
      [PG_LOG.unreachable, 'Error'],
      [PG_LOG.refused, 'no-role'],
      [PG_LOG.refused, 'no-database'],
      [PG_LOG.connected, undefined],
    ]);
  });
});

/** The rows of a read, in a canonical order (reads of changes keep the order of the first read). */
const sorted = (rows: string): string[] => rows.split('\n').filter((l) => l !== '').sort();

describe('PostgreSQL store: reads of what changed', () => {
  const lines = (rows: string): string[] => rows.split('\n').filter((l) => l !== '');

  /**
   * A store read by itself, and a check that the map its reads spell out (the
   * last whole read with every change read since made) equals a fresh read of
   * the whole table.
   */
  function storeFor(t: { after: (fn: () => unknown) => void }, url: string) {
    const store = postgresStoreKind(FAST).open(url);
    const fresh = postgresStoreKind(FAST).open(url);
    t.after(() => {
      store.close();
      fresh.close();
    });
    assert.ok(store instanceof PostgresMapStore);
    let known = new Set<string>();
    return {
      store,
      /** Reads what changed (the whole table when the store says it must), checks, and says how it was read. */
      readAndCompare: async (what: string): Promise<'full' | 'changes' | 'deletions'> => {
        const { full, deletions } = store.reads;
        const changes = await store.read(false);
        if (changes.kind === 'whole') known = new Set(lines(changes.rows));
        else {
          for (const line of lines(changes.removed)) assert.ok(known.delete(line), `${what}: a removed row was not in the map: ${line}`);
          for (const line of lines(changes.inserted)) {
            assert.ok(!known.has(line), `${what}: an inserted row was in the map already: ${line}`);
            known.add(line);
          }
        }
        assert.deepEqual([...known].sort(), sorted(whole(await fresh.read(true)).rows), what);
        return store.reads.full > full ? 'full' : store.reads.deletions > deletions ? 'deletions' : 'changes';
      },
    };
  }

  test('saves, saves again, updates in place and freezes are read as changes; a read equals the whole table every time', async (t) => {
    if (!(await cluster.ready(t))) return;
    const db = await cluster.createDatabase();
    const writer = writerFor(t, db);
    await writer.bulkInsert(300, '127.0.0.1', 5000);
    const { readAndCompare } = storeFor(t, cluster.url(db));
    assert.equal(await readAndCompare('first read'), 'full');
    assert.equal(await readAndCompare('nothing changed'), 'changes');
    await writer.save({ key: 'new1', token: 't', host: '127.0.0.1', port: 5001 });
    assert.equal(await readAndCompare('a new entry point'), 'changes');
    await writer.save({ key: 'bulk7', token: 't2', host: '127.0.0.1', port: 5002 });
    assert.equal(await readAndCompare('an entry point saved again (DELETE + INSERT)'), 'changes');
    await cluster.query(`UPDATE gxitproxy SET port = 5003 WHERE key = 'bulk8'`, [], db);
    assert.equal(await readAndCompare('an UPDATE in place'), 'changes');
    await cluster.query('VACUUM FREEZE gxitproxy', [], db);
    await writer.save({ key: 'new2', token: 't', host: '127.0.0.1', port: 5004 });
    assert.equal(await readAndCompare('after VACUUM FREEZE'), 'changes');
  });

  test('a whole read after reads of changes (a reconnection, the periodic check) is answered as what changed since the last answer', async (t) => {
    if (!(await cluster.ready(t))) return;
    const db = await cluster.createDatabase();
    const writer = writerFor(t, db);
    await writer.bulkInsert(200, '127.0.0.1', 5400);
    // The periodic check due at once: every read after a read of changes is a whole one.
    const store = new PostgresMapStore(cluster.url(db), FAST, 0);
    t.after(() => store.close());
    const updates = new UpdateMaker();
    assert.equal(updates.next(await store.read(false))?.kind, 'full');
    await writer.save({ key: 'new1', token: 't', host: '127.0.0.1', port: 5401 });
    await writer.save({ key: 'bulk7', token: 't2', host: '127.0.0.1', port: 5402 });
    await writer.remove('bulk12');
    await cluster.query(`UPDATE gxitproxy SET port = 5403 WHERE key = 'bulk8'`, [], db);
    await writer.save({ key: 'new2', token: 't', host: '127.0.0.1', port: 5404 });
    const changes = await store.read(false);
    assert.equal(changes.kind, 'changes');
    assert.equal(updates.next(changes)?.kind, 'diff');
    assert.deepEqual(store.reads, { full: 1, changes: 1, deletions: 1 });
    // A removal, an UPDATE in place and a save, read by a whole read.
    await writer.remove('bulk20');
    await cluster.query(`UPDATE gxitproxy SET port = 5405 WHERE key = 'bulk21'`, [], db);
    await writer.save({ key: 'new3', token: 't', host: '127.0.0.1', port: 5406 });
    const again = await store.read(false);
    assert.equal(store.reads.full, 2);
    assert.ok(again.kind === 'changes');
    assert.equal(again.removed.split('\n').filter((l) => l !== '').length, 2, 'bulk20 and bulk21 as they were');
    assert.equal(again.inserted.split('\n').filter((l) => l !== '').length, 2, 'bulk21 and new3 as they are');
    const next = updates.next(again);
    assert.ok(next?.kind === 'diff' && next.removals.split('\n').filter((l) => l !== '').length === 1, 'one entry point gone');
    assert.equal(next.sessions, 201);
    assert.equal((await store.read(true)).kind, 'whole', 'a forced read is answered whole');
  });

  test('a deletion is seen by the count and found by bucket; so is a deletion hidden behind an insert', async (t) => {
    if (!(await cluster.ready(t))) return;
    const db = await cluster.createDatabase();
    const writer = writerFor(t, db);
    await writer.bulkInsert(500, '127.0.0.1', 5100);
    const { readAndCompare } = storeFor(t, cluster.url(db));
    await readAndCompare('first read');
    await writer.remove('bulk3');
    assert.equal(await readAndCompare('a removal'), 'deletions');
    await writer.remove('bulk4');
    await writer.save({ key: 'other', token: 't', host: '127.0.0.1', port: 5101 });
    assert.equal(await readAndCompare('a removal and a new entry point: the count is the same as before'), 'deletions');
    // The same bucket ("13"): one row gone, one new, the bucket's count unchanged; the table's count says otherwise.
    await writer.remove('bulk113');
    await writer.save({ key: 'new213', token: 't', host: '127.0.0.1', port: 5103 });
    await writer.save({ key: 'more', token: 't', host: '127.0.0.1', port: 5104 });
    assert.equal(await readAndCompare('a removal and a new row in the same bucket'), 'deletions');
    await writer.remove('bulk5');
    await writer.save({ key: 'bulk5', token: 't', host: '127.0.0.1', port: 5102 });
    assert.equal(await readAndCompare('removed and saved again'), 'changes');
    // Every row of a bucket gone (bucket "k9" held only bulk9... and more): the table no longer has the bucket at all.
    for (const key of ['bulk9', 'bulk19', 'bulk29', 'bulk39']) await writer.remove(key);
    await writer.save({ key: 'k', token: 't', host: '127.0.0.1', port: 5105 });
    assert.equal(await readAndCompare('many removals'), 'deletions');
    // A key whose bucket this side cannot tell (a tab in it: its raw row holds a stand-in): both buckets differ, both are read.
    await cluster.query(`INSERT INTO gxitproxy (key, key_type, token, host, port, info) VALUES (E'ta\\tb', 'interactivetoolentrypoint', 't', '127.0.0.1', 5106, NULL)`, [], db);
    await readAndCompare('an unusable key');
    await writer.remove('bulk6');
    assert.equal(await readAndCompare('a removal beside an unusable key'), 'deletions');
  });

  test('rows of a transaction still open during a read are found by the next read', async (t) => {
    if (!(await cluster.ready(t))) return;
    const db = await cluster.createDatabase();
    const writer = writerFor(t, db);
    await writer.bulkInsert(20, '127.0.0.1', 5200);
    const { store, readAndCompare } = storeFor(t, cluster.url(db));
    const open = new pg.Client(cluster.config(db));
    await open.connect();
    t.after(() => open.end());
    // A transaction that writes (and so holds an xid) before the read, and commits after it.
    await open.query('BEGIN');
    await open.query(`INSERT INTO gxitproxy (key, key_type, token, host, port, info) VALUES ('slow', 'interactivetoolentrypoint', 't', '127.0.0.1', 5201, NULL)`);
    await readAndCompare('while a writer is open');
    // Later transactions commit first.
    await writer.save({ key: 'quick', token: 't', host: '127.0.0.1', port: 5202 });
    assert.equal(await readAndCompare('a later transaction committed'), 'changes');
    await open.query(`UPDATE gxitproxy SET port = 5203 WHERE key = 'bulk1'`);
    await open.query('COMMIT');
    assert.equal(await readAndCompare('the older transaction committed last'), 'changes');
    assert.ok(whole(await store.read(true)).rows.includes('slow\t'));
  });

  test('after a reconnection the whole table is read again', async (t) => {
    if (!(await cluster.ready(t))) return;
    const db = await cluster.createDatabase();
    const writer = writerFor(t, db);
    await writer.bulkInsert(10, '127.0.0.1', 5300);
    const { readAndCompare } = storeFor(t, cluster.url(db));
    await readAndCompare('first read');
    await cluster.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'galaxy-gie-proxy'`, [db]);
    // While the store is away: a save, a removal and an UPDATE in place, which the whole read must all carry.
    await writer.save({ key: 'during', token: 't', host: '127.0.0.1', port: 5301 });
    await writer.remove('bulk3');
    await cluster.query(`UPDATE gxitproxy SET port = 5303 WHERE key = 'bulk4'`, [], db);
    // Reads fail until the store has its new connection; the first one then reads the whole table.
    const how = await waitUntil('read after the reconnection', () => readAndCompare('after the reconnection').catch(() => undefined), { timeoutMs: 15_000, everyMs: 50 });
    assert.equal(how, 'full');
    await writer.save({ key: 'after', token: 't', host: '127.0.0.1', port: 5302 });
    assert.equal(await readAndCompare('a save after the reconnection'), 'changes');
  });
});

describe('PostgreSQL store on the reader thread', () => {
  test('the daemon reads on its thread; saves and removals are followed, and /health keeps the sync time and the change detection', async (t) => {
    if (!(await cluster.ready(t))) return;
    const db = await cluster.createDatabase();
    const writer = writerFor(t, db);
    await writer.bulkInsert(200, '127.0.0.1', 5400);
    await writer.installReadmeTrigger();
    const proxy = await startInProcessProxy(t, { sessionsPath: cluster.url(db), pollIntervalMs: 0, metricsPort: 0, metricsIp: '127.0.0.1' });
    const health = async (): Promise<{ sessions: number; sessionMap: { store: PostgresStatus } }> =>
      JSON.parse((await request(proxy.daemon.metricsAddress!.port, { path: '/health' })).body) as { sessions: number; sessionMap: { store: PostgresStatus } };
    const before = (await health()).sessionMap.store.lastSyncAtMs ?? 0;
    await writer.save({ key: 'threaded', token: 't', host: '127.0.0.1', port: 5401 });
    await waitUntil('routed through the thread', () => proxy.daemon.entryPoints.lookup('threaded')?.[0]?.port === 5401 || undefined, { timeoutMs: 15_000, everyMs: 5 });
    await writer.remove('bulk9');
    await waitUntil('removal followed', () => proxy.daemon.entryPoints.lookup('bulk9') === undefined || undefined, { timeoutMs: 15_000, everyMs: 5 });
    const { sessions, sessionMap } = await health();
    assert.equal(sessions, 200);
    assert.ok((sessionMap.store.lastSyncAtMs ?? 0) > before, 'reads on the thread count as syncs');
    await waitUntil('change detection known', async () => (await health()).sessionMap.store.changeDetection === 'row-versions' || undefined, { timeoutMs: 10_000, everyMs: 100 });
    // The store on the thread answers every read after the first with the changes.
    assert.deepEqual(proxy.logs.withMsg(MAP_LOG.reloaded).map((l) => l.update), ['full', 'diff', 'diff'], 'one rebuild, at start-up');
  });
});

describe('PostgreSQL store on the reader thread: the database going away', () => {
  const outages = {
    'pg_ctl restart -m fast': async () => injectFault(cluster, 'pg_ctl restart -m fast', '', undefined),
    pg_terminate_backend: async (db: string) => injectFault(cluster, 'pg_terminate_backend', db, undefined),
    // Down long enough for both connections to be several backoff steps in, each at its own (jittered) time.
    'down for 4 s (stop -m fast, start)': async () => {
      await cluster.stop('fast');
      await new Promise((resolve) => setTimeout(resolve, 4000));
      cluster.start();
    },
  };
  for (const [fault, inject] of Object.entries(outages)) {
    test(`${fault}: a save made while the proxy was away is routed once it is back (LISTEN only)`, async (t) => {
      if (!(await cluster.ready(t))) return;
      const db = await cluster.createDatabase();
      const writer = writerFor(t, db);
      await writer.bulkInsert(200, '127.0.0.1', 5500);
      await writer.installReadmeTrigger();
      await writer.close();
      const proxy = await startInProcessProxy(t, { sessionsPath: cluster.url(db), pollIntervalMs: 0 });
      const lost = proxy.logs.next(PG_LOG.lost, 15_000);
      const back = proxy.logs.next(PG_LOG.back, 30_000);
      const during = new GalaxyPgWriter(cluster.config(db));
      t.after(() => during.close());
      // Both connections (the watch's and the reader thread's) are cut.
      await inject(db);
      await lost;
      await during.save({ key: 'during', token: 't', host: '127.0.0.1', port: 5501 });
      await back;
      await waitUntil('the save made during the outage routed', () => proxy.daemon.entryPoints.lookup('during')?.[0]?.port === 5501 || undefined, { timeoutMs: 20_000, everyMs: 10 });
      assert.equal(proxy.daemon.entryPoints.lookup('bulk1')?.[0]?.port, 5500, 'the map was kept');
    });
  }
});
