import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createLogger } from '../../src/log.js';
import { EntryPointTable } from '../../src/routing/entry-point-table.js';
import { RouteTable } from '../../src/routing/route-table.js';
import { installTrigger, PG_LOG, postgresStoreKind, POSTGRES_TUNING, type PostgresStatus, type PostgresTuning } from '../../src/session-map/postgres-store.js';
import { parsePostgresUrl } from '../../src/session-map/postgres-url.js';
import { InlineMapReader } from '../../src/session-map/reader.js';
import { MAP_LOG, ReloadReporter } from '../../src/session-map/reload-report.js';
import { MapReloader } from '../../src/session-map/reloader.js';
import type { ChangeWatch } from '../../src/session-map/store.js';
import { GalaxyPgWriter } from '../helpers/galaxy-pg-writer.js';
import { LogCapture } from '../helpers/logs.js';
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
const FAST: PostgresTuning = { ...POSTGRES_TUNING, heartbeatMs: 300, statementTimeoutMs: 1000, connectTimeoutMs: 1000, backoffMinMs: 50, backoffMaxMs: 500 };

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
    workerThreshold: Infinity,
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

async function writerFor(t: { after: (fn: () => unknown) => void }, db: string): Promise<GalaxyPgWriter> {
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
    const writer = await writerFor(t, db);
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
    const writer = await writerFor(t, db);
    await writer.save({ key: 'a', token: 't', host: '127.0.0.1', port: 2001 });
    const r = startStore(t, cluster.url(db), 100);
    await routedTo(r, 'a', 2001);
    await writer.save({ key: 'a', token: 't', host: '127.0.0.1', port: 2002 });
    await routedTo(r, 'a', 2002);
    assert.equal(r.status().changeDetection, 'table-digest');
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
    const writer = await writerFor(t, db);
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
    const writer = await writerFor(t, db);
    await writer.save({ key: 'late', token: 't', host: '127.0.0.1', port: 4001 });
    await routedTo(r, 'late', 4001);
  });

  for (const fault of PG_FAULTS) {
    test(`${fault}: the last good map keeps routing, one warning, and the change made meanwhile is routed after`, async (t) => {
      if (!(await cluster.ready(t))) return;
      const db = await cluster.createDatabase();
      const writer = await writerFor(t, db);
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
    const writer = await writerFor(t, db);
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
});
