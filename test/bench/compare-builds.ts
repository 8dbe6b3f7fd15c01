/**
 * Compares builds of the proxy with each other, each against the bare
 * reference, on CPU per request and requests/s at 1 session:
 *
 *   node --import tsx test/bench/compare-builds.ts [--rounds 16] [--seconds 3] [--connections 32] NAME=path/to/lib/main.js ...
 *
 * e.g. `before=/tmp/old/lib/main.js after=lib/main.js` (build the old tree in
 * a worktree of its own). Unlike `npm run bench`, every process (the
 * reference and every build) is started afresh for each round: a Node
 * process keeps what its JIT made of it, and one started once can stay a few
 * per cent off the others for the whole run, more than a change to the hot
 * path moves. The processes of a round run on the servers' core, one after
 * the other in a shuffled order: 2 s of warm-up each, then per build 1 s more
 * and `--seconds` measured (CPU from /proc/<pid>/stat, requests from the load
 * generator), 32 connections (`--connections 1` for the latency at light
 * load), with the bench's request and backend (nginx's `return 200`, or the
 * Node backend without nginx). Prints each round, then per build the median
 * of its per-round ratios with their spread.
 */
import { join } from 'node:path';
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
  options: { rounds: { type: 'string', default: '16' }, seconds: { type: 'string', default: '3' }, connections: { type: 'string', default: '32' } },
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

const resources = new BenchResources();
const pinning = choosePinning();
const generator = pickGenerator();
const SESSION = 'compare-builds-session';

/** One round of load on `server`: its CPU µs per request and its requests/s. */
async function measure(server: Listening, loadSeconds: number): Promise<{ us: number; rps: number }> {
  const spec = { url: `http://127.0.0.1:${server.port}${REQUEST_PATH}`, headers: { cookie: cookieHeader(SESSION) }, connections, cores: pinning.load };
  const cpuBefore = cpuSeconds(server.pid);
  const load = await runLoad(resources, generator, { ...spec, seconds: loadSeconds });
  const cpu = cpuSeconds(server.pid) - cpuBefore;
  if (load.errors > 0) throw new Error(`${server.name}: ${load.errors} failed requests`);
  return { us: (cpu * 1e6) / load.requests, rps: load.rps };
}

try {
  // The bench's backend: nginx's `return 200` when installed, else the Node backend.
  const nginx = findNginx();
  const backend = nginx === undefined ? await startNodeBackend(resources, pinning.load) : await startNginx(resources, nginx, 'backend', backendConfig, pinning.load);
  const mapPath = join(resources.dir, 'map.sqlite');
  writeSqliteMapFile(mapPath, 'gxproxy2', [[SESSION, '127.0.0.1', backend.port]]);
  const ratios = new Map(builds.map((b) => [b.name, { cpu: [] as number[], rps: [] as number[] }]));
  for (let round = 1; round <= rounds; round++) {
    const reference = await startReferenceProxy(resources, { name: 'reference', sessionsPath: mapPath, cookie: COOKIE, expectedRoutes: 1, cores: pinning.servers });
    const servers: Listening[] = [reference];
    const children = [reference.child];
    for (const build of builds) {
      const proxy = await startProxy(resources, { name: build.name, mainJs: build.mainJs, sessionsPath: mapPath, cookie: COOKIE, expectedRoutes: 1, cores: pinning.servers });
      servers.push(proxy);
      children.push(proxy.proxy.child);
    }
    for (const server of servers) await measure(server, 2);
    const measured = new Map<string, { us: number; rps: number }>();
    for (const server of [...servers].sort(() => Math.random() - 0.5)) {
      await measure(server, 1);
      measured.set(server.name, await measure(server, seconds));
    }
    await Promise.all(children.map((child) => resources.stop(child)));
    const ref = measured.get('reference')!;
    const cells = [`reference ${fmt(ref.us, 1)} µs ${fmt(ref.rps, 0)}/s`];
    for (const build of builds) {
      const m = measured.get(build.name)!;
      ratios.get(build.name)!.cpu.push(m.us / ref.us);
      ratios.get(build.name)!.rps.push(m.rps / ref.rps);
      cells.push(`${build.name} ${fmt(m.us, 1)} µs (×${fmt(m.us / ref.us, 3)}) ${fmt(m.rps, 0)}/s (×${fmt(m.rps / ref.rps, 3)})`);
    }
    process.stdout.write(`round ${round}: ${cells.join(' | ')}\n`);
  }
  for (const build of builds) {
    const r = ratios.get(build.name)!;
    process.stdout.write(`${build.name}: CPU per request ÷ reference ${fmtSpread(spread(r.cpu), 3)}; requests/s ÷ reference ${fmtSpread(spread(r.rps), 3)}\n`);
  }
} finally {
  await resources.close();
}
