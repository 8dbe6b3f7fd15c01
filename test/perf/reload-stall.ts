/**
 * Measures, for a session map of N sessions (default 100,000), what a reload
 * costs the proxy: commit→routed latency for each kind of change Galaxy
 * makes, the longest event-loop stall while reloading, and peak RSS.
 *
 *   node --import tsx test/perf/reload-stall.ts [sessions] [changes per kind] [format]
 *
 * format: gxproxy2 (default), gxproxy2-wal, gxproxy (older Galaxy), json, json-oldest.
 *
 * Galaxy's writer runs in its own process (as in production), the proxy
 * in-process so that its event loop can be watched. Prints one JSON object.
 * Timings depend on the machine and its load: this is a measurement, not a test.
 */
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { tempDir } from '../helpers/galaxy-map.js';
import { GalaxyWriterProcess, sessionKey as key, type MapFormat, type WriterCommand } from '../helpers/galaxy-writer-process.js';
import { startInProcessProxy } from '../helpers/in-process-proxy.js';
import { startUpstream } from '../helpers/upstream.js';
import { cookie, request } from '../helpers/client.js';

const SESSIONS = Number(process.argv[2] ?? 100_000);
const CHANGES = Number(process.argv[3] ?? 20);
const FORMAT = process.argv[4] ?? 'gxproxy2';
const WAL = FORMAT === 'gxproxy2-wal';
const now = (): number => performance.timeOrigin + performance.now();

function summary(values: number[]): { median: number; max: number; n: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (x: number): number => Math.round(x * 10) / 10;
  return { median: round(sorted[Math.floor(sorted.length / 2)] ?? NaN), max: round(sorted.at(-1) ?? NaN), n: sorted.length };
}

const tmp = tempDir('gie-perf-');
const upstream = await startUpstream('perf');
const path = join(tmp.dir, FORMAT.startsWith('json') ? 'session_map.json' : 'session_map.sqlite');
const writer = new GalaxyWriterProcess(path, (WAL ? 'gxproxy2' : FORMAT) as MapFormat);
if (WAL) await writer.send({ op: 'exec', sql: 'PRAGMA journal_mode=WAL' });
await writer.send({ op: 'fill', count: SESSIONS, host: '127.0.0.1', port: upstream.port }, 120_000);

const mib = (bytes: number): number => Math.round(bytes / 2 ** 20);
const rssBefore = process.memoryUsage().rss;
let t0 = now();
// A script, not a test: the proxy is closed at the end by hand.
const proxy = await startInProcessProxy({ after: () => {} }, { sessionsPath: path });
const startMs = now() - t0;
// Let the start-up garbage go and the reader thread settle before measuring.
await new Promise((r) => setTimeout(r, 500));
const rssLoaded = process.memoryUsage().rss;

const loop = monitorEventLoopDelay({ resolution: 1 });
let probeMax = 0;
let last = performance.now();
const probe = setInterval(() => {
  const t = performance.now();
  probeMax = Math.max(probeMax, t - last - 2);
  last = t;
}, 2);
loop.enable();

/** Runs one change and waits until `routed()` holds; returns commit→routed ms. */
async function timed(cmd: WriterCommand, routed: () => boolean): Promise<number> {
  const committed = await writer.send(cmd);
  // The table changes just before the reload is logged, so checking on each
  // log line sees the moment it is routed.
  await proxy.logs.waitFor(routed, 10_000);
  return now() - committed;
}

const lookup = (k: string) => proxy.daemon.table.lookup(k);
const added: number[] = [];
const updated: number[] = [];
const removed: number[] = [];
for (let i = 0; i < CHANGES; i++) {
  const k = `new-${i}-${key(i)}`;
  // Own addresses, so that the oldest JSON shape (keyed by host:port) keeps them all; new-0 is requested.
  const host = i === 0 ? '127.0.0.1' : `127.0.1.${i}`;
  added.push(await timed({ op: 'add', key: k, host, port: upstream.port }, () => lookup(k) !== undefined));
  // A row in the middle of the table: the re-read cannot be a pure append.
  const mid = key(Math.floor(SESSIONS / 2) + i);
  const port = 20000 + i;
  updated.push(await timed({ op: 'update', key: mid, host: '127.0.0.1', port }, () => lookup(mid)?.port === port));
  const gone = key(i * 7);
  removed.push(await timed({ op: 'remove', key: gone }, () => lookup(gone) === undefined));
}
const ok = await request(proxy.port, { headers: cookie(`new-0-${key(0)}`) });
t0 = now();
await proxy.daemon.reload();
const forcedMs = now() - t0;
clearInterval(probe);
loop.disable();

console.log(
  JSON.stringify(
    {
      sessions: SESSIONS,
      format: FORMAT,
      routedStatus: ok.status,
      startMs: Math.round(startMs),
      commitToRoutedMs: { add: summary(added), update: summary(updated), remove: summary(removed) },
      forcedReloadMs: Math.round(forcedMs),
      longestStallMs: { monitorEventLoopDelay: Math.round(loop.max / 1e5) / 10, timerProbe: Math.round(probeMax * 10) / 10 },
      stallP99Ms: Math.round(loop.percentile(99) / 1e5) / 10,
      rssMiB: { beforeStart: mib(rssBefore), loaded: mib(rssLoaded), peak: mib(process.resourceUsage().maxRSS * 1024), end: mib(process.memoryUsage().rss) },
    },
    null,
    2,
  ),
);
writer.close();
await proxy.close();
await upstream.close();
tmp.remove();
