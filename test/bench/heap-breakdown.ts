/**
 * Where the memory of a proxy with a large map goes, thread by thread:
 *
 *   node --expose-gc --import tsx test/bench/heap-breakdown.ts [sessions]
 *
 * Main thread: the proxy started in this process on a map of N sessions
 * (default 100,000) written with Galaxy's statements, V8's heap spaces after a
 * full start-up read, Galaxy's writes (diffs) and a full re-read, each after
 * a garbage collection. Reader thread: the same producer the proxy's reader
 * thread runs (src/session-map/producer.ts), in a thread of its own so that its
 * heap can be read from inside and snapshotted, with the largest object kinds
 * of the snapshot. Prints Markdown. A measurement, not a test.
 */
import { once } from 'node:events';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { startInProcessProxy } from '../helpers/in-process-proxy.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';
import { newSessionKey, table } from './context.js';

const SESSIONS = Number(process.argv[2] ?? 100_000);
const MiB = 2 ** 20;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

type Spaces = Record<string, number>;

function spaces(): Spaces {
  const out: Spaces = {};
  for (const s of v8.getHeapSpaceStatistics()) out[s.space_name] = s.space_used_size;
  const h = v8.getHeapStatistics();
  out.total_used = h.used_heap_size;
  out.total_committed = h.total_heap_size;
  out.external = h.external_memory;
  return out;
}

function spacesTable(columns: [string, Spaces][]): string {
  const names = Object.keys(columns[0][1]);
  return table(
    ['MiB', ...columns.map(([c]) => c)],
    names.map((n) => [n, ...columns.map(([, s]) => ((s[n] ?? 0) / MiB).toFixed(1))]),
  );
}

/** The reader thread's work (src/session-map/reader-thread.ts) with a way to read its heap from inside. */
const WORKER = `
import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then(async ({ register }) => {
  register();
  const { parentPort, workerData } = await import('node:worker_threads');
  const v8 = (await import('node:v8')).default;
  const { UpdateProducer } = await import(${JSON.stringify(new URL('../../src/session-map/producer.ts', import.meta.url).href)});
  let producer;
  const spaces = ${spaces.toString()};
  const stats = () => {
    globalThis.gc();
    return spaces();
  };
  parentPort.on('message', async (op) => {
    if (op === 'open') producer = new UpdateProducer((await import(${JSON.stringify(new URL('../../src/session-map/file/file-store.ts', import.meta.url).href)})).fileStores.open(workerData.path));
    else if (op === 'full' || op === 'diff') { const u = await producer.produce(op === 'full'); parentPort.postMessage({ kind: u?.kind }); return; }
    parentPort.postMessage({ stats: stats() });
  });
  parentPort.postMessage({ ready: true });
});
`;

async function ask(worker: Worker, op: string): Promise<{ stats?: Spaces; kind?: string }> {
  const reply = once(worker, 'message') as Promise<[{ stats?: Spaces; kind?: string }]>;
  worker.postMessage(op);
  return (await reply)[0];
}

/** Self size by object kind in a V8 heap snapshot (strings by string type, objects by constructor). */
async function snapshotSummary(worker: Worker, top = 12): Promise<string> {
  const stream = await worker.getHeapSnapshot();
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  const snap = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const bySize = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + iType]];
    const name = type.includes('string') || type === 'number' || type === 'code' ? '' : snap.strings[snap.nodes[i + iName]].slice(0, 40);
    const key = name === '' ? `(${type})` : `${name} (${type})`;
    const entry = bySize.get(key) ?? { size: 0, count: 0 };
    entry.size += snap.nodes[i + iSize];
    entry.count++;
    bySize.set(key, entry);
  }
  const rows = [...bySize].sort((a, b) => b[1].size - a[1].size).slice(0, top);
  return table(['kind', 'MiB', 'count'], rows.map(([k, v]) => [k, (v.size / MiB).toFixed(2), String(v.count)]));
}

const tmp = tempDir('gie-heap-');
try {
  const path = join(tmp.dir, 'map.sqlite');
  const writer = new GalaxySqliteWriter(path);
  const fillers: [string, string, number][] = [];
  for (let i = 0; i < SESSIONS; i++) fillers.push([newSessionKey(), '127.0.0.1', 10_000 + (i % 50_000)]);
  writer.addMany(fillers);
  fillers.length = 0;
  process.stdout.write(`# Heap at ${SESSIONS.toLocaleString('en-US')} sessions (Node ${process.version})\n\n`);

  // Main thread: the proxy itself.
  gc();
  const before = spaces();
  const rss0 = process.memoryUsage().rss;
  // Closed by hand below (no test context here).
  const proxy = await startInProcessProxy({ after: () => undefined }, { sessionsPath: path });
  gc();
  const started = spaces();
  for (let i = 0; i < 5; i++) {
    const next = proxy.logs.next(MAP_LOG.reloaded, 30_000);
    writer.addSession(newSessionKey(), '127.0.0.1', 10_000);
    await next;
  }
  gc();
  const afterWrites = spaces();
  const t0 = performance.now();
  await proxy.daemon.reload();
  const rereadMs = performance.now() - t0;
  gc();
  const afterReread = spaces();
  const rss1 = process.memoryUsage().rss;
  await proxy.close();
  process.stdout.write(
    `## Main thread (in-process proxy; the reader thread runs too)\n\n${spacesTable([
      ['no proxy', before],
      ['after start-up', started],
      ['after 5 writes', afterWrites],
      [`after a full re-read (${rereadMs.toFixed(0)} ms)`, afterReread],
    ])}\n\nprocess RSS grew by ${((rss1 - rss0) / MiB).toFixed(1)} MiB (both threads, this process runs under tsx)\n\n`,
  );

  // Reader thread: the same producer, in a thread whose heap can be read.
  const worker = new Worker(WORKER, { eval: true, workerData: { path } });
  await once(worker, 'message');
  const empty = (await ask(worker, 'stats')).stats!;
  await ask(worker, 'open');
  await ask(worker, 'full');
  const afterFull = (await ask(worker, 'stats')).stats!;
  for (let i = 0; i < 5; i++) {
    writer.addSession(newSessionKey(), '127.0.0.1', 10_000);
    const { kind } = await ask(worker, 'diff');
    if (kind !== 'diff') throw new Error(`expected a diff, the producer made ${String(kind)}`);
  }
  const afterDiffs = (await ask(worker, 'stats')).stats!;
  const summary = await snapshotSummary(worker);
  await ask(worker, 'full');
  const afterFull2 = (await ask(worker, 'stats')).stats!;
  await worker.terminate();
  process.stdout.write(
    `## Reader thread (src/session-map/producer.ts in a thread)\n\n${spacesTable([
      ['thread only', empty],
      ['after a full read', afterFull],
      ['after 5 diffs', afterDiffs],
      ['after another full read', afterFull2],
    ])}\n\nLargest kinds in its heap snapshot after the diffs (self size):\n\n${summary}\n`,
  );
} finally {
  tmp.remove();
}
