/**
 * Figures for the PostgreSQL map (issue 11), against a throw-away cluster:
 * Galaxy commit → routed by a spawned proxy (median / max over 20 writes) at
 * 1,000 and 100,000 entry points with gx-it-proxy's README trigger, with ours
 * (--install-trigger), and by polling only; and the statements each idle
 * proxy sends (pg_stat_statements calls per second).
 *
 *   npm run build && node --import tsx test/bench/postgres.ts [--sizes 1000,100000] [--writes 20] [--idle-seconds 20]
 */
import { parseArgs } from 'node:util';
import { GalaxyPgWriter } from '../helpers/galaxy-pg-writer.js';
import { PgCluster, postgresInstalled, PG_INSTALL } from '../helpers/postgres.js';
import { installTriggerCli, routedPort, startPgProxy } from '../helpers/postgres-proxy.js';
import { startUpstream } from '../helpers/upstream.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,100000' },
    writes: { type: 'string', default: '20' },
    'idle-seconds': { type: 'string', default: '20' },
    modes: { type: 'string', default: 'readme,ours,poll' },
  },
});
const sizes = values.sizes.split(',').map(Number);
const writes = Number(values.writes);
const idleSeconds = Number(values['idle-seconds']);
const modes = values.modes.split(',') as Mode[];

type Mode = 'readme' | 'ours' | 'poll';
const MODE_NAMES: Record<Mode, string> = {
  readme: "gx-it-proxy's README trigger (row level)",
  ours: 'our trigger (--install-trigger)',
  poll: 'no trigger: poll every 5000 ms',
};

if (!postgresInstalled()) {
  process.stderr.write(`PostgreSQL 15 is not installed (${PG_INSTALL})\n`);
  process.exit(1);
}

const cluster = new PgCluster();
const afters: (() => unknown)[] = [];
const t = { after: (fn: () => unknown) => afters.push(fn), skip: () => {} };

function stats(ms: number[]): { median: number; max: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median: Math.round(median * 10) / 10, max: Math.round(sorted[sorted.length - 1]! * 10) / 10 };
}

async function statementCalls(db: string): Promise<number> {
  const { rows } = await cluster.query<{ calls: string | null }>(
    `SELECT sum(calls)::text AS calls FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)`,
    [db],
  );
  return Number(rows[0]?.calls ?? 0);
}

async function main(): Promise<void> {
  await cluster.ready(t as never);
  await cluster.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  const upstream = await startUpstream('bench');
  const results: string[] = [];
  const idle: string[] = [];
  for (const size of sizes) {
    for (const mode of modes) {
      const db = await cluster.createDatabase('bench');
      const writer = new GalaxyPgWriter(cluster.config(db));
      await writer.bulkInsert(size, '127.0.0.1', upstream.port);
      if (mode === 'readme') await writer.installReadmeTrigger();
      if (mode === 'ours') {
        const installed = await installTriggerCli(cluster.url(db));
        if (installed.code !== 0) throw new Error(installed.stderr);
      }
      const proxy = await startPgProxy(t, cluster.url(db), []);
      await proxy.sessions(size, 120_000);
      const latencies: number[] = [];
      for (let i = 0; i < writes; i++) {
        const key = `w${size}m${i}`;
        await writer.save({ key, token: 'tok', host: '127.0.0.1', port: upstream.port });
        // From Galaxy's COMMIT returning to the first request the container answers.
        const committed = performance.now();
        await routedPort(proxy, key, 'tok', 30_000);
        latencies.push(performance.now() - committed);
        // Writes spaced like launches, at random points of the poll's cycle
        // (a write right after the previous routing would always wait a whole cycle).
        await new Promise((r) => setTimeout(r, mode === 'poll' ? Math.random() * 5000 : 50 + Math.random() * 200));
      }
      const { median, max } = stats(latencies);
      results.push(`| ${size.toLocaleString('en')} | ${MODE_NAMES[mode]} | ${median} | ${max} |`);
      // Idle: nothing written, the proxy only polls and heartbeats.
      const before = await statementCalls(db);
      const from = performance.now();
      await new Promise((r) => setTimeout(r, idleSeconds * 1000));
      const after = await statementCalls(db);
      const perSecond = (after - before) / ((performance.now() - from) / 1000);
      idle.push(`| ${size.toLocaleString('en')} | ${MODE_NAMES[mode]} | ${perSecond.toFixed(2)} |`);
      proxy.proc.kill();
      await writer.close();
      process.stderr.write(`${results[results.length - 1]}\n${idle[idle.length - 1]}\n`);
    }
  }
  await upstream.close();
  process.stdout.write(
    `Commit → routed (ms over ${writes} Galaxy saves, from Galaxy's COMMIT returning to the first request the container answers)\n\n| entry points | change detection | median | max |\n|---|---|---|---|\n${results.join('\n')}\n\n` +
      `Statements per second one idle proxy sends (pg_stat_statements, ${idleSeconds} s)\n\n| entry points | change detection | statements/s |\n|---|---|---|\n${idle.join('\n')}\n`,
  );
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const fn of afters.reverse()) await fn();
    await cluster.destroy();
  });
