/**
 * Compares builds of the proxy with each other, each against the bare
 * reference, on CPU per request and requests/s at 1 session:
 *
 *   node --import tsx test/bench/compare-builds.ts [--rounds 16] [--seconds 3] [--connections 32]
 *     [--warm-connections N] [--cpu-prof DIR] NAME=path/to/lib/main.js ...
 *
 * e.g. `before=/tmp/old/lib/main.js after=lib/main.js` (build the old tree in
 * a worktree of its own). Unlike `npm run bench`, every process (the
 * reference and every build) is started afresh for each round: a Node
 * process keeps what its JIT made of it, and one started once can stay a few
 * per cent off the others for the whole run, more than a change to the hot
 * path moves. The processes of a round run on the servers' core, one after
 * the other in a shuffled order: 2 s of warm-up each (at `--warm-connections`,
 * by default `--connections`; the bench's latency rounds come after its
 * 32-connection rounds), then per build 1 s more
 * and `--seconds` measured (CPU from /proc/<pid>/stat, requests from the load
 * generator), 32 connections (`--connections 1` for the latency at light
 * load), with the bench's request and backend (nginx's `return 200`, or the
 * Node backend without nginx). Prints each round, then per build the median
 * of its per-round ratios with their spread. `--cpu-prof DIR` writes a V8 CPU
 * profile of every process, one directory per round.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { writeSqliteMapFile } from '../helpers/galaxy-map.js';
import { COOKIE, cookieHeader, fmt, fmtSpread, REQUEST_PATH, spread } from './context.js';
import { pickGenerator, runLoad } from './load.js';
import { cpuSeconds } from './proc-stats.js';
import { backendConfig, findNginx, startNginx } from './nginx.js';
import { BenchResources } from './processes.js';
import { startNodeBackend, startProxy, startReferenceProxy, type Listening } from './servers.js';
import { choosePinning } from './steady.js';

const { values, positionals } = parseArgs({
  options: {
    rounds: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    'warm-connections': { type: 'string' },
    'cpu-prof': { type: 'string' },
  },
  allowPositionals: true,
});
const builds = positionals.map((arg) => {
  const at = arg.indexOf('=');
  if (at <= 0) throw new Error(`expected NAME=path/to/lib/main.js, got ${arg}`);
  return { name: arg.slice(0, at), mainJs: arg.slice(at + 1) };
});
if (builds.length === 0) throw new Error('usage: compare-builds.ts [--rounds N] [--seconds S] [--connections C] NAME=path/to/lib/main.js ...');
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const warmConnections = Number(values['warm-connections'] ?? values.connections);
const cpuProfDir = values['cpu-prof'] === undefined ? undefined : resolve(values['cpu-prof']);

const resources = new BenchResources();
const pinning = choosePinning();
const generator = pickGenerator();
const SESSION = 'compare-builds-session';

interface Measured {
  readonly us: number;
  readonly rps: number;
  readonly p50: number;
}

/** One round of load on `server`: its CPU µs per request and its requests/s. */
async function measure(server: Listening, loadSeconds: number, load = connections): Promise<Measured> {
  const spec = { url: `http://127.0.0.1:${server.port}${REQUEST_PATH}`, headers: { cookie: cookieHeader(SESSION) }, connections: load, cores: pinning.load };
  const cpuBefore = cpuSeconds(server.pid);
  const result = await runLoad(resources, generator, { ...spec, seconds: loadSeconds });
  const cpu = cpuSeconds(server.pid) - cpuBefore;
  if (result.errors > 0) throw new Error(`${server.name}: ${result.errors} failed requests`);
  return { us: (cpu * 1e6) / result.requests, rps: result.rps, p50: result.p50 };
}

/** A copy of `items` in a uniformly random order (Fisher–Yates). */
function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

try {
  // The bench's backend: nginx's `return 200` when installed, else the Node backend.
  const nginx = findNginx();
  const backend = nginx === undefined ? await startNodeBackend(resources, pinning.load) : await startNginx(resources, nginx, 'backend', backendConfig, pinning.load);
  const mapPath = join(resources.dir, 'map.sqlite');
  writeSqliteMapFile(mapPath, 'gxproxy2', [[SESSION, '127.0.0.1', backend.port]]);
  const ratios = new Map(builds.map((b) => [b.name, { cpu: [] as number[], rps: [] as number[], p50: [] as number[] }]));
  for (let round = 1; round <= rounds; round++) {
    const profiles = cpuProfDir === undefined ? undefined : join(cpuProfDir, `round-${round}`);
    const reference = await startReferenceProxy(resources, { name: 'reference', sessionsPath: mapPath, cookie: COOKIE, expectedRoutes: 1, cores: pinning.servers, cpuProfDir: profiles });
    const servers: Listening[] = [reference];
    const children = [reference.child];
    for (const build of builds) {
      const proxy = await startProxy(resources, { name: build.name, mainJs: build.mainJs, sessionsPath: mapPath, cookie: COOKIE, expectedRoutes: 1, cores: pinning.servers, cpuProfDir: profiles });
      servers.push(proxy);
      children.push(proxy.proxy.child);
    }
    for (const server of servers) await measure(server, 2, warmConnections);
    const measured = new Map<string, Measured>();
    for (const server of shuffled(servers)) {
      await measure(server, 1);
      measured.set(server.name, await measure(server, seconds));
    }
    await Promise.all(children.map((child) => resources.stop(child)));
    const ref = measured.get('reference')!;
    const cells = [`reference ${fmt(ref.us, 1)} µs ${fmt(ref.rps, 0)}/s p50 ${fmt(ref.p50, 3)} ms`];
    for (const build of builds) {
      const m = measured.get(build.name)!;
      ratios.get(build.name)!.cpu.push(m.us / ref.us);
      ratios.get(build.name)!.rps.push(m.rps / ref.rps);
      ratios.get(build.name)!.p50.push(m.p50 / ref.p50);
      cells.push(`${build.name} ${fmt(m.us, 1)} µs (×${fmt(m.us / ref.us, 3)}) ${fmt(m.rps, 0)}/s (×${fmt(m.rps / ref.rps, 3)}) p50 ${fmt(m.p50, 3)} ms`);
    }
    process.stdout.write(`round ${round}: ${cells.join(' | ')}\n`);
  }
  for (const build of builds) {
    const r = ratios.get(build.name)!;
    process.stdout.write(`${build.name}: CPU per request ÷ reference ${fmtSpread(spread(r.cpu), 3)}; requests/s ÷ reference ${fmtSpread(spread(r.rps), 3)}; p50 latency ÷ reference ${fmtSpread(spread(r.p50), 3)}\n`);
  }
} finally {
  await resources.close();
}
