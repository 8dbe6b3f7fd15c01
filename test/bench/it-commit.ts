/**
 * Interactive Tools: commit → routed, this proxy and (when built) gx-it-proxy
 * 0.2.3 side by side in the same run.
 *
 *   npm run build && node --import tsx test/bench/it-commit.ts [--sizes 1000,100000] [--writes 20] [--proxies ours,gx-it-proxy]
 *
 * For each of Galaxy's two gxitproxy writers (≥ 24.2 SQLAlchemy, 19.09–24.1
 * raw sqlite3 under PATH.lock) and each map size, every proxy gets its own map
 * file and its own writer process (filled with that many entry points before
 * the proxy starts). Then, 20 times, a new entry point is saved with Galaxy's
 * statements, and a client asks the proxy for its path URL back to back until
 * the container answers; the figure is the time from the writer's COMMIT to
 * that answer (wall clock, both processes). Writes to the proxies alternate,
 * so both see the same machine.
 *
 * gx-it-proxy is looked for in $GX_IT_PROXY_DIR (a directory holding its
 * lib/main.js), by default where test/bench/peers.ts installs it
 * (npm install --prefix "$GIE_BENCH_PEERS/gx-it-proxy" @galaxyproject/gx-it-proxy@0.2.3).
 * Or build it outside this repository:
 *   git clone https://github.com/galaxyproject/gx-it-proxy /tmp/gxit && cd /tmp/gxit
 *   git checkout b6bb889 && npm install --omit=dev --omit=optional
 * It answers an unknown entry point by connecting to localhost:80 (its bug),
 * so the container is recognised by a header only it sends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { MAIN_JS } from '../helpers/spawned-proxy.js';
import { entryPointKey, type GalaxyItWriterKind } from '../helpers/galaxy-it-map.js';
import { GalaxyItWriterProcess } from '../helpers/galaxy-it-writer-process.js';
import { tempDir } from '../helpers/galaxy-map.js';
import { freePort } from '../helpers/ports.js';
import { fmt, median, table } from './context.js';
import { PEERS_DIR } from './peers.js';
import { waitUntilIdle } from './proc-stats.js';

const PREFIX = '/interactivetool/ep';
const MARK = 'x-it-bench-container';
/** Longest one new entry point may take to be routed before it counts as never. */
const ROUTE_TIMEOUT_MS = 10_000;

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,100000' },
    writes: { type: 'string', default: '20' },
    proxies: { type: 'string', default: 'ours,gx-it-proxy' },
  },
});
const wanted = new Set(values.proxies.split(','));
const sizes = values.sizes.split(',').map(Number);
const writes = Number(values.writes);
// A git checkout (its own node_modules), or the npm install the main benchmark uses (test/bench/peers.ts: sqlite3 beside it).
const gxItProxyDir = process.env.GX_IT_PROXY_DIR ?? join(PEERS_DIR, 'gx-it-proxy', 'node_modules', '@galaxyproject', 'gx-it-proxy');
const gxItProxyMain = join(gxItProxyDir, 'lib/main.js');
const haveGxItProxy = existsSync(gxItProxyMain) && (existsSync(join(gxItProxyDir, 'node_modules/sqlite3')) || existsSync(join(gxItProxyDir, '..', '..', 'sqlite3')));

interface Contender {
  readonly name: string;
  readonly command: (mapPath: string, port: number) => string[];
}

const contenders: Contender[] = [];
if (wanted.has('ours')) {
  contenders.push({
    name: 'galaxy-gie-proxy',
    command: (map, port) => [MAIN_JS, '--ip', '127.0.0.1', '--port', String(port), '--sessions', map, '--proxyPathPrefix', PREFIX],
  });
}
if (haveGxItProxy && wanted.has('gx-it-proxy')) {
  contenders.push({
    name: 'gx-it-proxy 0.2.3',
    command: (map, port) => [gxItProxyMain, '--ip', '127.0.0.1', '--port', String(port), '--sessions', map, '--proxyPathPrefix', PREFIX],
  });
}

/** The container: answers everything with 200 and a header only it sends. */
async function startContainer(): Promise<{ port: number; close: () => void }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { [MARK]: '1', 'content-length': 2 });
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}

/** True when the proxy sent the request to our container (not a refusal, not whatever listens on :80). */
function reachesContainer(agent: http.Agent, port: number, path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.headers[MARK] === '1'));
      res.once('error', () => resolve(false));
    });
    req.once('error', () => resolve(false));
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: false });
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    if (child.exitCode !== null) throw new Error(`proxy exited with ${child.exitCode} before listening`);
    const answered = await new Promise<boolean>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        res.resume();
        resolve(true);
      });
      req.once('error', () => resolve(false));
    });
    if (answered) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`proxy did not listen on ${port} within ${timeoutMs} ms`);
}

interface Run {
  readonly contender: Contender;
  readonly writer: GalaxyItWriterProcess;
  readonly child: ChildProcess;
  readonly port: number;
  readonly agent: http.Agent;
  readonly times: number[];
}

async function startRun(contender: Contender, kind: GalaxyItWriterKind, size: number, containerPort: number, dir: string): Promise<Run> {
  const map = join(dir, `${contender.name.replace(/\W+/g, '-')}.sqlite`);
  const writer = new GalaxyItWriterProcess(map, kind);
  await writer.send({ op: 'fill', count: size, host: '127.0.0.1', port: containerPort }, 120_000);
  const port = await freePort();
  const child = spawn(process.execPath, contender.command(map, port), { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port, child, 30_000);
  // The first entry point of the fill is routed once the map is loaded.
  const { key, token } = entryPointKey(0);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const until = performance.now() + 60_000;
  while (!(await reachesContainer(agent, port, `${PREFIX}/${key}/${token}/`))) {
    if (performance.now() > until) throw new Error(`${contender.name} did not load ${size} entry points within 60 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { contender, writer, child, port, agent, times: [] };
}

async function timeOneWrite(run: Run, i: number, containerPort: number): Promise<void> {
  await waitUntilIdle(run.child.pid ?? 0, { windowMs: 200, maxShare: 0.1, timeoutMs: 20_000 });
  const { key, token } = entryPointKey(10_000_000 + i);
  const path = `${PREFIX}/${key}/${token}/`;
  if (await reachesContainer(run.agent, run.port, path)) throw new Error(`${run.contender.name} routes an entry point never written`);
  const committedAt = await run.writer.send({ op: 'save', entry: { key, token, host: '127.0.0.1', port: containerPort } });
  const started = performance.now();
  let ms = Number.POSITIVE_INFINITY;
  while (performance.now() - started < ROUTE_TIMEOUT_MS) {
    if (await reachesContainer(run.agent, run.port, path)) {
      ms = performance.timeOrigin + performance.now() - committedAt;
      break;
    }
  }
  run.times.push(ms);
}

function stopRun(run: Run): void {
  run.agent.destroy();
  run.writer.close();
  if (run.child.exitCode === null) run.child.kill('SIGKILL');
}

const rows: string[][] = [];
const container = await startContainer();
try {
  if (!haveGxItProxy) process.stderr.write(`gx-it-proxy not found in ${gxItProxyDir} (set GX_IT_PROXY_DIR): measuring this proxy only\n`);
  for (const kind of ['sqlalchemy', 'legacy'] as const) {
    for (const size of sizes) {
      const { dir, remove } = tempDir('gie-it-bench-');
      const runs: Run[] = [];
      try {
        for (const c of contenders) runs.push(await startRun(c, kind, size, container.port, dir));
        for (let i = 0; i < writes; i++) {
          for (const run of runs) await timeOneWrite(run, i, container.port);
        }
        for (const run of runs) {
          const finite = run.times.filter(Number.isFinite);
          process.stderr.write(`${run.contender.name} ${kind} ${size}: ${run.times.map((t) => fmt(t, 0)).join(' ')}\n`);
          rows.push([
            run.contender.name,
            kind === 'sqlalchemy' ? 'Galaxy >= 24.2 (SQLAlchemy)' : 'Galaxy 19.09-24.1 (lock file)',
            size.toLocaleString('en-US'),
            fmt(median(run.times), 0),
            fmt(Math.max(...run.times), 0),
            `${finite.length}/${run.times.length}`,
          ]);
        }
      } finally {
        for (const run of runs) stopRun(run);
        remove();
      }
    }
  }
} finally {
  container.close();
}
process.stdout.write(`\ncommit → routed (ms), ${writes} writes each\n`);
process.stdout.write(`${table(['proxy', 'writer', 'entry points', 'median', 'max', 'routed'], rows)}\n`);
