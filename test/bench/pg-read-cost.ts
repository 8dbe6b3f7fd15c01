/**
 * What one read of the PostgreSQL map costs the proxy's thread, at N entry
 * points: wall time and this thread's CPU (process.threadCpuUsage is not in
 * Node 20: the process's, with nothing else running in it) of a whole read,
 * a read of a save, and a read of a removal, each through the store and the
 * producer's conversion as the reader thread runs them. A measurement, not a test:
 *
 *   node --import tsx test/bench/pg-read-cost.ts [entry points]
 */
import { performance } from 'node:perf_hooks';
import { GalaxyPgWriter } from '../helpers/galaxy-pg-writer.js';
import { PgCluster } from '../helpers/postgres.js';
import { UpdateMaker } from '../../src/session-map/producer.js';
import { PostgresMapStore } from '../../src/session-map/postgres/store.js';
import { POSTGRES_TUNING } from '../../src/session-map/postgres/connection.js';

const N = Number(process.argv[2] ?? 100_000);
const cluster = new PgCluster();
const cleanups: (() => unknown)[] = [];
await cluster.ready({ after: (fn: () => unknown) => cleanups.push(fn), skip: () => {} } as never);
const db = await cluster.createDatabase('cost');
const writer = new GalaxyPgWriter(cluster.config(db));
await writer.bulkInsert(N, '127.0.0.1', 9, 'e');
await writer.installReadmeTrigger();
const store = new PostgresMapStore(cluster.url(db), POSTGRES_TUNING);
const updates = new UpdateMaker();

async function measure(what: string, step: () => Promise<unknown>): Promise<void> {
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  await step();
  const wall = performance.now() - t0;
  const used = process.cpuUsage(cpu);
  console.log(`${what.padEnd(28)} wall ${wall.toFixed(1).padStart(7)} ms   cpu ${((used.user + used.system) / 1000).toFixed(1).padStart(7)} ms`);
}
const changes = async (): Promise<void> => {
  const c = await store.read(false);
  if (c.kind !== 'changes') throw new Error('no changes read');
  if (updates.next(c) === undefined) throw new Error('the producer wanted a whole read');
};
for (let i = 0; i < 3; i++) await measure(`whole read ${i + 1}`, async () => updates.next(await store.read(true)));
for (let i = 0; i < 5; i++) {
  await writer.save({ key: `new${i}`, token: 't', host: '127.0.0.1', port: 9 });
  await measure(`read of a save ${i + 1}`, changes);
  await writer.remove(`e${i + 10}`);
  await measure(`read of a removal ${i + 1}`, changes);
}
await measure('nothing changed', async () => store.read(false));
console.log(`reads: ${JSON.stringify(store.reads)}`);
store.close();
await writer.close();
for (const fn of cleanups.reverse()) await fn();
await cluster.destroy();
