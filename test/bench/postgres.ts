/**
 * Figures for the PostgreSQL map (issue 11), against a throw-away cluster:
 * Galaxy commit → routed by a spawned proxy (median / max over 20 writes) at
 * 1,000 and 100,000 entry points with gx-it-proxy's README trigger, with ours
 * (--install-trigger), and by polling only; the statements each idle
 * proxy sends (pg_stat_statements calls per second); and what each proxy
 * does when the database is restarted (`pg_ctl restart -m fast`).
 *
 * Mode `gxit` runs gx-it-proxy 0.2.3 itself (with the README trigger and its
 * default 5 s poll) the same way, side by side. It needs pg-native, which
 * compiles libpq bindings at install (libpq-dev, g++, make, python3, and
 * Node's headers: npm's nodedir): the bench installs it on first use into
 * $GX_IT_PROXY_PG_DIR (default: a directory under the OS temp dir, never
 * this repository) and skips the mode, saying why, when it cannot be built.
 *
 *   npm run build && node --import tsx test/bench/postgres.ts [--sizes 1000,100000] [--writes 20] [--idle-seconds 20] [--modes readme,ours,poll,gxit]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { GalaxyPgWriter } from '../helpers/galaxy-pg-writer.js';
import { PgCluster, postgresInstalled, PG_INSTALL } from '../helpers/postgres.js';
import { installTriggerCli, requestEntryPoint, routedPort, startPgProxy } from '../helpers/postgres-proxy.js';
import { freePort } from '../helpers/ports.js';
import { runBounded } from '../helpers/processes.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,100000' },
    writes: { type: 'string', default: '20' },
    'idle-seconds': { type: 'string', default: '20' },
    modes: { type: 'string', default: 'readme,ours,poll,gxit' },
  },
});
const sizes = values.sizes.split(',').map(Number);
const writes = Number(values.writes);
const idleSeconds = Number(values['idle-seconds']);
const modes = values.modes.split(',') as Mode[];

type Mode = 'readme' | 'ours' | 'poll' | 'gxit';
const MODE_NAMES: Record<Mode, string> = {
  readme: "gx-it-proxy's README trigger (row level)",
  ours: 'our trigger (--install-trigger)',
  poll: 'no trigger: poll every 5000 ms',
  gxit: "gx-it-proxy 0.2.3 (pg-native), README trigger, its 5 s poll",
};

const GX_IT_PROXY = '@galaxyproject/gx-it-proxy@0.2.3';
const gxItDir = process.env.GX_IT_PROXY_PG_DIR ?? join(tmpdir(), 'gx-it-proxy-0.2.3-pg-native');
const gxItMain = join(gxItDir, 'node_modules/@galaxyproject/gx-it-proxy/lib/main.js');

/** gx-it-proxy 0.2.3 with pg-native loadable: its main.js, or why not (the mode is then skipped). */
async function gxItProxy(): Promise<{ main: string } | { skip: string }> {
  const loads = async (): Promise<boolean> =>
    existsSync(gxItMain) && (await runBounded(process.execPath, ['-e', "require('pg-native')"], { cwd: gxItDir, timeoutMs: 30_000, allowFailure: true })).code === 0;
  if (await loads()) return { main: gxItMain };
  process.stderr.write(`installing ${GX_IT_PROXY} with pg-native into ${gxItDir} (compiles libpq bindings and sqlite3; a few minutes)\n`);
  mkdirSync(gxItDir, { recursive: true });
  if (!existsSync(join(gxItDir, 'package.json'))) writeFileSync(join(gxItDir, 'package.json'), '{"name":"gx-it-proxy-bench","private":true}\n');
  // pg-native is gx-it-proxy's optional dependency: npm installs it (and builds libpq) unless it cannot.
  const install = await runBounded('npm', ['install', '--no-audit', '--no-fund', '--no-save', GX_IT_PROXY, 'pg-native@3'], { cwd: gxItDir, timeoutMs: 20 * 60_000, allowFailure: true }).catch(
    (err: Error) => ({ code: -1, stdout: '', stderr: err.message }),
  );
  if (install.code === 0 && (await loads())) return { main: gxItMain };
  const why = `${install.stdout}\n${install.stderr}`.split('\n').filter((l) => /ERR|error|not found|No such/i.test(l)).slice(-5).join(' | ');
  return { skip: `${GX_IT_PROXY} with pg-native could not be built in ${gxItDir} (needs libpq-dev, g++, make, python3 and Node's headers): ${why || `npm exited with ${install.code}`}` };
}

/** A proxy under test, spawned. */
interface Running {
  readonly port: number;
  readonly child: ChildProcess;
  /** How much it has written so far (stdout and stderr), for `since`. */
  written(): number;
  /** What it wrote (the last 64 KiB at most) after `written()` was `mark`. */
  since(mark: number): string;
}

/** Collects a child's stdout and stderr for `Running`. */
function collect(child: ChildProcess): Pick<Running, 'written' | 'since'> {
  let text = '';
  let total = 0;
  const feed = (c: Buffer): void => {
    const s = c.toString('utf8');
    total += s.length;
    text = (text + s).slice(-65536);
  };
  child.stdout?.on('data', feed);
  child.stderr?.on('data', feed);
  return { written: () => total, since: (mark) => text.slice(Math.max(0, text.length - (total - mark))) };
}

/** Spawns gx-it-proxy 0.2.3 on `url`, as usegalaxy.org runs it (default polling). */
async function startGxItProxy(main: string, url: string): Promise<Running> {
  const port = await freePort();
  const child = spawn(process.execPath, [main, '--ip', '127.0.0.1', '--port', String(port), '--sessions', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  afters.push(() => child.kill('SIGKILL'));
  return { port, child, ...collect(child) };
}

/**
 * Resolves once the container answers for `key` (gx-it-proxy sends an unknown
 * entry point to localhost:80, so only the container's own answer counts).
 */
async function routed(port: number, key: string, token: string, timeoutMs: number): Promise<void> {
  await waitUntil(
    `${key} routed`,
    async () => {
      const reply = await requestEntryPoint(port, key, token).catch(() => undefined);
      return (reply?.status === 200 && reply.body.includes('"upstream":"bench"')) || undefined;
    },
    { timeoutMs, everyMs: 2 },
  );
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

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
  const median = sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median: Math.round(median * 10) / 10, max: Math.round(sorted[sorted.length - 1] * 10) / 10 };
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
  const gxIt = modes.includes('gxit') ? await gxItProxy() : undefined;
  if (gxIt !== undefined && 'skip' in gxIt) process.stderr.write(`skipping gx-it-proxy: ${gxIt.skip}\n`);
  const results: string[] = [];
  const idle: string[] = [];
  const restarts: string[] = [];
  for (const size of sizes) {
    for (const mode of modes) {
      if (mode === 'gxit' && (gxIt === undefined || 'skip' in gxIt)) continue;
      const db = await cluster.createDatabase('bench');
      const writer = new GalaxyPgWriter(cluster.config(db));
      await writer.bulkInsert(size, '127.0.0.1', upstream.port);
      if (mode === 'readme' || mode === 'gxit') await writer.installReadmeTrigger();
      if (mode === 'ours') {
        const installed = await installTriggerCli(cluster.url(db));
        if (installed.code !== 0) throw new Error(installed.stderr);
      }
      let proxy: Running;
      if (gxIt !== undefined && 'main' in gxIt && mode === 'gxit') {
        proxy = await startGxItProxy(gxIt.main, cluster.url(db));
      } else {
        const ours = await startPgProxy(t, cluster.url(db), []);
        await ours.sessions(size, 120_000);
        proxy = { port: ours.port, child: ours.proc.child, ...collect(ours.proc.child) };
      }
      // The last of the bulk rows is routed once the map is loaded.
      await routed(proxy.port, `bulk${size - 1}`, `t${size - 1}`, 120_000);
      const latencies: number[] = [];
      for (let i = 0; i < writes; i++) {
        const key = `w${size}m${i}`;
        await writer.save({ key, token: 'tok', host: '127.0.0.1', port: upstream.port });
        // From Galaxy's COMMIT returning to the first request the container answers.
        const committed = performance.now();
        if (mode === 'gxit') await routed(proxy.port, key, 'tok', 30_000);
        else await routedPort(proxy, key, 'tok', 30_000);
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
      restarts.push(`| ${size.toLocaleString('en')} | ${MODE_NAMES[mode]} | ${await restartCase(proxy, writer, db, size, upstream.port)} |`);
      proxy.child.kill('SIGKILL');
      process.stderr.write(`${results[results.length - 1]}\n${idle[idle.length - 1]}\n${restarts[restarts.length - 1]}\n`);
    }
  }
  await upstream.close();
  process.stdout.write(
    `Commit → routed (ms over ${writes} Galaxy saves, from Galaxy's COMMIT returning to the first request the container answers)\n\n| entry points | change detection | median | max |\n|---|---|---|---|\n${results.join('\n')}\n\n` +
      `Statements per second one idle proxy sends (pg_stat_statements, ${idleSeconds} s)\n\n| entry points | change detection | statements/s |\n|---|---|---|\n${idle.join('\n')}\n\n` +
      `pg_ctl restart -m fast under the proxy, then one Galaxy save\n\n| entry points | proxy | what happened |\n|---|---|---|\n${restarts.join('\n')}\n` +
      (gxIt !== undefined && 'skip' in gxIt ? `\ngx-it-proxy 0.2.3 skipped: ${gxIt.skip}\n` : ''),
  );
}

/**
 * `pg_ctl restart -m fast`, then a Galaxy save (a new connection: Galaxy's
 * pool reconnects too): does the proxy live, keep routing the old map, and
 * route the new entry point, and how long after the restart began?
 */
async function restartCase(proxy: Running, oldWriter: GalaxyPgWriter, db: string, size: number, containerPort: number): Promise<string> {
  await oldWriter.close().catch(() => {});
  const mark = proxy.written();
  const began = performance.now();
  await cluster.restart('fast');
  const restartMs = performance.now() - began;
  // A death is quick (an unhandled 'error' event): give it a second to show.
  await Promise.race([once(proxy.child, 'exit'), new Promise((r) => setTimeout(r, 1000))]);
  if (!alive(proxy.child)) {
    // What it said when it died (not its refusals of unknown entry points).
    const last = proxy
      .since(mark)
      .split('\n')
      .filter((l) => /error|terminat/i.test(l) && !l.includes('Proxy error'))
      .slice(0, 2)
      .map((l) => l.trim().slice(0, 160))
      .join(' / ');
    return `died (exit ${proxy.child.exitCode ?? proxy.child.signalCode}) at the restart: ${last}; nothing routed until restarted`;
  }
  const oldRouted = await routed(proxy.port, `bulk${size - 1}`, `t${size - 1}`, 5000).then(
    () => true,
    () => false,
  );
  const writer = new GalaxyPgWriter(cluster.config(db));
  try {
    await writer.save({ key: `after${size}`, token: 'tok', host: '127.0.0.1', port: containerPort });
    const saved = performance.now();
    const ok = await routed(proxy.port, `after${size}`, 'tok', 30_000).then(
      () => true,
      () => false,
    );
    const total = ((performance.now() - began) / 1000).toFixed(1);
    const fromSave = Math.round(performance.now() - saved);
    return `alive, old map ${oldRouted ? 'kept routing' : 'NOT routed'}; a save after the restart ${ok ? `routed ${fromSave} ms after its commit (${total} s after the restart began, restart itself ${(restartMs / 1000).toFixed(1)} s)` : 'NOT routed within 30 s'}`;
  } finally {
    await writer.close();
  }
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
