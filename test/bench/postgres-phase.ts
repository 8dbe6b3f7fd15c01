import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { GalaxyPgWriter } from '../helpers/galaxy-pg-writer.js';
import { PgCluster, postgresInstalled, PG_INSTALL } from '../helpers/postgres.js';
import { entryPointHost, requestEntryPoint } from '../helpers/postgres-proxy.js';
import { fmt, fmtSpread, spread, type BenchContext, type Spread } from './context.js';
import { waitUntilIdle } from './proc-stats.js';
import { interleavedRounds, loadRound, ratios, type LoadTarget, type Round } from './rounds.js';
import { startProxy, type RunningProxy } from './servers.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';
import { PG_LOG } from '../../src/session-map/postgres/connection.js';

/** How often Galaxy removes an entry point during the "removals" rounds. */
const REMOVE_EVERY_MS = 1000;

/** How often the proxy's database connections are cut during the "re-reads" rounds (each makes it read the whole table again). */
const CUT_EVERY_MS = 2000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Longest the benchmark waits for one new entry point to be routed. */
const ROUTE_TIMEOUT_MS = 10_000;

/** The entry point the load asks for (routed by Host, as behind a wildcard domain). */
const FAST = { key: 'fast', token: 'tok' };

/**
 * The database at the lowest CPU priority (nice 19): it shares the load
 * generator's core, and its scans (a whole read is about 300 ms of server
 * time at 100,000 rows) would otherwise slow wrk down and show up as request
 * latency that is not the proxy's. In production it runs on a host of its
 * own. Backends forked later inherit the postmaster's priority.
 */
function yieldToLoad(cluster: PgCluster): void {
  const postmaster = Number(readFileSync(join(cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const children = spawnSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l !== '').map(Number);
  for (const pid of [postmaster, ...children]) setPriority(pid, 19);
}

export interface PostgresPhaseResult {
  readonly figures:
    | {
        /** Requests/s, PostgreSQL map at the large size / at 1 entry point, per round. */
        readonly bigOverSmall: Spread;
        /** Galaxy's commit → routed, ms, each save. */
        readonly commitMs: number[];
        /** p99 while Galaxy removes entry points (each a read of the buckets that lost rows) / without, per round. */
        readonly stallP99Ratio: Spread;
        /** p99 while the proxy reads the whole table again (its connection cut: a database blip) / without, per round. */
        readonly rereadP99Ratio: Spread;
      }
    | undefined;
  readonly report: string;
}

/**
 * The PostgreSQL map (issue 11) in `npm run bench`: a throw-away cluster on
 * the load side's core at nice 19 (see yieldToLoad), Galaxy's statements, gx-it-proxy's README trigger.
 * Requests/s through a proxy on a 1-entry-point map and one on the large map
 * (interleaved); Galaxy commit → routed on the large map; and request latency
 * on the large map, against rounds without, interleaved, while Galaxy
 * removes an entry point every second (the count shows it, no row does: the
 * proxy reads the buckets that lost rows) and while the proxy reads the
 * whole table again after its connections were cut (a database blip), every
 * two seconds: reads must not stall requests.
 */
export async function postgresPhase(ctx: BenchContext, setup: { backendPort: number; entryPoints: number; saves: number }): Promise<PostgresPhaseResult> {
  if (!postgresInstalled()) {
    const report = `not run: PostgreSQL is not installed (${PG_INSTALL})`;
    ctx.progress(`  ${report}`);
    return { figures: undefined, report };
  }
  const cluster = new PgCluster();
  const cleanups: (() => unknown)[] = [];
  const writers: GalaxyPgWriter[] = [];
  const proxies: RunningProxy[] = [];
  try {
    await cluster.ready({ after: (fn: () => unknown) => cleanups.push(fn), skip: () => {} } as never);
    yieldToLoad(cluster);
    const mapWith = async (name: string, entryPoints: number): Promise<{ url: string; writer: GalaxyPgWriter; db: string }> => {
      const db = await cluster.createDatabase(name);
      const writer = new GalaxyPgWriter(cluster.config(db));
      writers.push(writer);
      // The other entry points on a port nothing listens on (never requested).
      if (entryPoints > 1) await writer.bulkInsert(entryPoints - 1, '127.0.0.1', 9, 'e');
      await writer.save({ ...FAST, host: '127.0.0.1', port: setup.backendPort });
      await writer.installReadmeTrigger();
      return { url: cluster.url(db), writer, db };
    };
    const start = (name: string, url: string, entryPoints: number): Promise<RunningProxy> =>
      startProxy(ctx.resources, { name, sessionsPath: url, expectedRoutes: entryPoints, cores: ctx.pinning.servers, cpuProfDir: ctx.cpuProfDir });
    const small = await mapWith('small', 1);
    const big = await mapWith('big', setup.entryPoints);
    const pgSmall = await start('pg-1', small.url, 1);
    const pgBig = await start(`pg-${setup.entryPoints}`, big.url, setup.entryPoints);
    proxies.push(pgSmall, pgBig);
    const host = entryPointHost(FAST.key, FAST.token);
    const on = (name: string, p: RunningProxy): LoadTarget => ({ name, port: p.port, cpuPid: p.pid, key: undefined, host });
    const smallName = 'PostgreSQL 1';
    const bigName = `PostgreSQL ${setup.entryPoints}`;
    const lines: string[] = [];

    const rounds = Math.max(3, ctx.rounds);
    const results = await interleavedRounds(ctx, [on(smallName, pgSmall), on(bigName, pgBig)], ctx, rounds);
    const get = (name: string): Round[] => results.get(name) ?? [];
    const bigOverSmall = spread(ratios(get(bigName), get(smallName), (r) => r.rps));
    for (const [name, rs] of results) lines.push(`requests/s, ${name} entry point(s): ${fmtSpread(spread(rs.map((r) => r.rps)), 0)}`);
    lines.push(`requests/s, ${setup.entryPoints} / 1 entry point: ${fmtSpread(bigOverSmall)}`);

    ctx.progress(`  commit → routed, ${setup.saves} Galaxy saves`);
    const commitMs: number[] = [];
    for (let i = 0; i < setup.saves; i++) {
      await waitUntilIdle(pgBig.pid, { windowMs: 200, maxShare: 0.1, timeoutMs: 10_000 });
      const key = `commit${i}`;
      await big.writer.save({ key, token: 'tok', host: '127.0.0.1', port: setup.backendPort });
      // From Galaxy's COMMIT returning to the first request the container answers.
      const committed = performance.now();
      let ms = Number.POSITIVE_INFINITY;
      while (performance.now() - committed < ROUTE_TIMEOUT_MS) {
        if ((await requestEntryPoint(pgBig.port, key, 'tok')).status === 200) {
          ms = performance.now() - committed;
          break;
        }
      }
      commitMs.push(ms);
    }
    ctx.progress(`  commit → routed (ms): ${commitMs.map((t) => fmt(t, 0)).join(' ')}`);
    lines.push(`Galaxy commit → routed at ${setup.entryPoints} entry points, ms: ${fmtSpread(spread(commitMs), 0)}; each ${commitMs.map((t) => fmt(t, 0)).join(' ')}`);

    ctx.progress(`  latency at ${setup.entryPoints} entry points: quiet, Galaxy removing an entry point every ${REMOVE_EVERY_MS} ms, connections cut every ${CUT_EVERY_MS} ms`);
    const shape = { seconds: Math.max(4, ctx.seconds), connections: ctx.connections };
    const quiet: Round[] = [];
    const busy: Round[] = [];
    const rereads: Round[] = [];
    let removals = 0;
    let cuts = 0;
    const updatesBefore = pgBig.proxy.logs.withMsg(MAP_LOG.reloaded).length;
    const reconnectsBefore = pgBig.proxy.logs.withMsg(PG_LOG.back).length;
    /** One load round while `write` runs, again and again, `everyMs` apart. */
    const whileLoaded = async (name: string, everyMs: number, write: () => Promise<void>): Promise<Round> => {
      let writing = true;
      const writes = (async () => {
        while (writing) {
          await write();
          await sleep(everyMs);
        }
      })();
      try {
        return await loadRound(ctx, { ...on(bigName, pgBig), name: `${bigName} ${name}` }, shape);
      } finally {
        writing = false;
        await writes;
      }
    };
    for (let i = 0; i < rounds; i++) {
      await waitUntilIdle(pgBig.pid);
      quiet.push(await loadRound(ctx, { ...on(bigName, pgBig), name: `${bigName} quiet` }, shape));
      await waitUntilIdle(pgBig.pid);
      // A removal leaves no row to read: the count shows it, and the proxy
      // reads the buckets that lost rows. The entry point is saved back half
      // a period later (a read of changes), so the map keeps its size.
      busy.push(
        await whileLoaded('removals', REMOVE_EVERY_MS / 2, async () => {
          const n = 1 + (removals % (setup.entryPoints - 2));
          await big.writer.remove(`e${n}`);
          removals++;
          await sleep(REMOVE_EVERY_MS / 2);
          await big.writer.save({ key: `e${n}`, token: `t${n}`, host: '127.0.0.1', port: 9 });
        }),
      );
      await waitUntilIdle(pgBig.pid);
      // The proxy's connections cut, as by a database restart: it reconnects and reads the whole table.
      rereads.push(
        await whileLoaded('re-reads', CUT_EVERY_MS, async () => {
          await cluster.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'galaxy-gie-proxy'`, [big.db]);
          cuts++;
        }),
      );
    }
    const stallP99Ratio = spread(ratios(busy, quiet, (r) => r.p99));
    const rereadP99Ratio = spread(ratios(rereads, quiet, (r) => r.p99));
    const updateMs = pgBig.proxy.logs.withMsg(MAP_LOG.reloaded).slice(updatesBefore).map((l) => Number(l.ms));
    const reconnects = pgBig.proxy.logs.withMsg(PG_LOG.back).length - reconnectsBefore;
    const p99s = (rs: Round[]): string => fmtSpread(spread(rs.map((r) => r.p99)), 2, ' ms');
    lines.push(
      `p99 while Galaxy removes an entry point every ${REMOVE_EVERY_MS} ms (and saves it back) / without, ${setup.entryPoints} entry points: ` +
        `${fmtSpread(stallP99Ratio)} (p99 without ${p99s(quiet)}, with ${p99s(busy)}; ${removals} removals)`,
      `p99 while the proxy reads the whole table again (its connections cut every ${CUT_EVERY_MS} ms) / without, ${setup.entryPoints} entry points: ` +
        `${fmtSpread(rereadP99Ratio)} (p99 with ${p99s(rereads)}; ${cuts} cuts, ${reconnects} reconnections)`,
      `map updates during these rounds, ms by the proxy's log: ${fmtSpread(spread(updateMs), 0)} (n=${updateMs.length})`,
    );
    return { figures: { bigOverSmall, commitMs, stallP99Ratio, rereadP99Ratio }, report: lines.join('\n') };
  } finally {
    for (const p of proxies) await ctx.resources.stop(p.proxy.child);
    for (const w of writers) await w.close();
    for (const fn of cleanups.reverse()) await fn();
    await cluster.destroy();
  }
}
