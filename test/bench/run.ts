/**
 * `npm run bench`: the proxy built from this tree against the bare reference
 * (test/bench/reference-proxy.ts: http-proxy + a keep-alive agent + `cookie`
 * + a Map, a measuring stick) and nginx (the yardstick an admin knows), on
 * the same backend and machine, interleaved, with the targets of issue 12
 * judged at the end. Reports; never part of `npm test`. See README
 * "Performance" and `--help`.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { GalaxySqliteWriter } from '../helpers/galaxy-map.js';
import { latencyUnderChurn, INSERT_EVERY_MS } from './churn.js';
import { commitToRouted } from './commit-latency.js';
import { COOKIE, fmt, fmtSpread, newSessionKey, spread, table, type BenchContext } from './context.js';
import { pickGenerator, type Generator } from './load.js';
import { fullReread, mapRows } from './memory.js';
import { backendConfig, findNginx, referenceConfig, startNginx, type NginxRoute } from './nginx.js';
import { memory, waitUntilIdle } from './proc-stats.js';
import { BenchResources } from './processes.js';
import { interleave, interleavedRounds, ratios, type LoadTarget, type Round } from './rounds.js';
import { itRoutingPhase } from './it-routing.js';
import { postgresPhase } from './postgres-phase.js';
import { configurableHttpProxy, skipped, startConfigurableHttpProxy, type RunningPeer } from './peers.js';
import { startNodeBackend, startProxy, startReferenceProxy, type Listening, type RunningProxy } from './servers.js';
import { choosePinning, pinSelf, SteadyRunner } from './steady.js';
import { streamingMemory } from './streaming.js';
import { machineLine, targetsTable, type Figures } from './targets.js';
import { webSocketRoundTrips, type EchoRound } from './websocket.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';

const PHASES = ['throughput', 'latency', 'commit', 'churn', 'memory', 'routing', 'postgres', 'streaming', 'websocket'] as const;
type Phase = (typeof PHASES)[number];

const USAGE = `Usage: npm run bench -- [options]

  --rounds <n>        interleaved rounds per comparison (default 10, at least 3)
  --seconds <s>       seconds of load per round (default 2)
  --connections <n>   concurrent connections of the load generator (default 32)
  --sessions <n>      sessions in the large map (default 100000)
  --inserts <n>       new sessions timed from commit to routed (default 20)
  --stream-mib <n>    size of the streamed upload and download (default 200)
  --only <list>       comma-separated phases: ${PHASES.join(',')}
  --no-nginx          no nginx even if installed (Node backend, no yardstick)
  --load <gen>        wrk or autocannon (default: wrk when installed)
  --cpu-prof <dir>    write a V8 CPU profile of each Node proxy into <dir>
  --json <file>       also write the figures as JSON

Rounds run only while the machine is steady: a SHA-256 probe on the servers'
core before and after each round, and the CPU time of processes this bench did
not start during it; a disturbed round is discarded and run again (up to 4
attempts). With two cores or more, the servers run on core 0 and the load
side (wrk, backends, this process) on core 1.
`;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '10' },
      seconds: { type: 'string', default: '2' },
      connections: { type: 'string', default: '32' },
      sessions: { type: 'string', default: '100000' },
      inserts: { type: 'string', default: '20' },
      'stream-mib': { type: 'string', default: '200' },
      only: { type: 'string', default: PHASES.join(',') },
      'no-nginx': { type: 'boolean', default: false },
      load: { type: 'string' },
      'cpu-prof': { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (name: string, value: string, min: number): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, not ${value}`);
    return n;
  };
  const only = new Set(values.only.split(',').map((s) => s.trim()));
  for (const phase of only) if (!(PHASES as readonly string[]).includes(phase)) throw new Error(`--only: unknown phase ${phase}`);
  if (values.load !== undefined && values.load !== 'wrk' && values.load !== 'autocannon') {
    throw new Error(`--load must be wrk or autocannon, not ${values.load}`);
  }
  // Narrowed by the check above; typed here, as a property it would widen to string.
  const load: Generator | undefined = values.load;
  return {
    rounds: int('rounds', values.rounds, 3),
    seconds: int('seconds', values.seconds, 1),
    connections: int('connections', values.connections, 1),
    sessions: int('sessions', values.sessions, 2),
    inserts: int('inserts', values.inserts, 1),
    streamMiB: int('stream-mib', values['stream-mib'], 1),
    only: only as Set<Phase>,
    noNginx: values['no-nginx'],
    load,
    cpuProfDir: values['cpu-prof'] === undefined ? undefined : resolve(values['cpu-prof']),
    json: values.json,
  };
}

/** First line a tool prints about its version (nginx -v writes on stderr, wrk --version exits 1). */
function toolVersion(command: string, args: string[]): string {
  const { stdout, stderr } = spawnSync(command, args, { encoding: 'utf8' });
  return `${stdout ?? ''}${stderr ?? ''}`.split('\n')[0].trim();
}

/** Per target: median and spread of each figure over the rounds. */
function roundsTable(columns: readonly [string, Round[]][], digits = 2): string {
  const rows: string[][] = [];
  for (const [name, rounds] of columns) {
    const cell = (values: number[], d: number): string => {
      const s = spread(values);
      return `${fmt(s.median, d)} (${fmt(s.min, d)}–${fmt(s.max, d)})`;
    };
    rows.push([
      name,
      String(rounds.length),
      cell(rounds.map((r) => r.rps), 0),
      cell(rounds.map((r) => r.p50), digits),
      cell(rounds.map((r) => r.p99), digits),
      cell(rounds.map((r) => r.cpuUs), 1),
      String(rounds.filter((r) => r.steadiness.attempts > 1).length) + (rounds.some((r) => !r.steadiness.steady) ? ` (${rounds.filter((r) => !r.steadiness.steady).length} unsteady)` : ''),
    ]);
  }
  return table(['target', 'rounds', 'req/s median (range)', 'p50 ms', 'p99 ms', 'CPU µs/req', 're-run'], rows);
}

function ratioLine(label: string, values: number[], digits = 2): string {
  return `${label}: ${fmtSpread(spread(values), digits)}; per round ${values.map((v) => fmt(v, digits)).join(' ')}`;
}

async function main(): Promise<void> {
  const opts = parseOptions();
  const resources = new BenchResources();
  const report: string[] = [];
  const figures: Figures = {};
  const extra: Record<string, string | number> = {};
  // Ours ÷ each peer (issue 21): a line each, and median/IQR keys on the machine line.
  const peerSummary: string[] = [];
  const peerFigure = (key: string, label: string, values: number[], digits = 2): void => {
    const s = spread(values);
    peerSummary.push(`${label}: ${fmtSpread(s, digits)}`);
    extra[key] = s.median.toFixed(4);
    extra[`${key}_q1`] = s.q1.toFixed(4);
    extra[`${key}_q3`] = s.q3.toFixed(4);
  };
  const t0 = Date.now();
  try {
    const nginx = opts.noNginx ? undefined : findNginx();
    const pinning = choosePinning();
    pinSelf(pinning.load);
    const progress = (line: string): void => void process.stderr.write(`${line}\n`);
    const ctx: BenchContext = {
      resources,
      generator: opts.load ?? pickGenerator(),
      nginx,
      rounds: opts.rounds,
      seconds: opts.seconds,
      connections: opts.connections,
      bigSessions: opts.sessions,
      cpuProfDir: opts.cpuProfDir,
      pinning,
      steady: await SteadyRunner.start(resources, pinning, progress),
      progress,
    };
    if (ctx.cpuProfDir !== undefined) mkdirSync(ctx.cpuProfDir, { recursive: true });
    const machine = [
      `date: ${new Date().toISOString()}`,
      `machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${fmt(totalmem() / 2 ** 30, 0)} GiB RAM, load average at start ${loadavg().map((l) => fmt(l)).join(' ')}`,
      `cores: ${pinning.servers === undefined ? 'not pinned (one core, or no taskset)' : `servers under test on core ${pinning.servers}, load generator, backends and the bench on core ${pinning.load}`}`,
      `node ${process.version}; load: ${ctx.generator === 'wrk' ? toolVersion('wrk', ['--version']) : 'autocannon (in the bench process)'}, ${ctx.connections} connections, ${ctx.rounds} interleaved rounds of ${ctx.seconds} s`,
      `nginx: ${nginx === undefined ? 'not used — no yardstick figures, Node backend' : toolVersion(nginx, ['-v'])}`,
    ];
    ctx.progress(machine.join('\n'));

    const nodeBackend = await startNodeBackend(resources, pinning.load);
    const fast: Listening = nginx === undefined ? nodeBackend : await backendListening(ctx, nginx);
    machine.push(`backend: ${nginx === undefined ? 'Node http server answering 200 "ok" (test/bench/node-backend.ts)' : 'nginx `return 200 "ok"`'} on 127.0.0.1:${fast.port}`);
    report.push(machine.join('\n'));

    const big = opts.sessions % 1000 === 0 ? `${opts.sessions / 1000}k` : String(opts.sessions);
    const names = {
      proxy: 'proxy 1',
      ref: 'reference 1',
      nginx: 'nginx 1',
      proxyBig: `proxy ${big}`,
      nginxBig: `nginx ${big}`,
      direct: 'direct to backend',
      chp: 'configurable-http-proxy 1',
    };
    const fastKey = newSessionKey();
    const nodeKey = newSessionKey();
    const wantBig = ['throughput', 'routing', 'commit', 'churn', 'memory'].some((p) => opts.only.has(p as Phase));
    const wantSmall = opts.only.has('throughput') || opts.only.has('latency') || opts.only.has('routing');

    // Maps written as Galaxy writes them.
    const smallPath = join(resources.dir, 'small.sqlite');
    new GalaxySqliteWriter(smallPath).addSession(fastKey, '127.0.0.1', fast.port);
    const bigPath = join(resources.dir, 'big.sqlite');
    const bigWriter = new GalaxySqliteWriter(bigPath);
    const fillers: [string, string, number][] = [];
    if (wantBig) {
      ctx.progress(`writing a ${opts.sessions}-session map`);
      for (let i = 0; i < opts.sessions - 1; i++) fillers.push([newSessionKey(), '127.0.0.1', 10_000 + (i % 50_000)]);
      bigWriter.addMany(fillers);
      bigWriter.addSession(fastKey, '127.0.0.1', fast.port);
    }

    const onServers = { cores: pinning.servers, cookie: COOKIE, cpuProfDir: ctx.cpuProfDir };
    let proxyBig: RunningProxy | undefined;
    // RSS of the large-map proxy once idle after each phase.
    const rssBigSamples: [string, number][] = [];
    const sampleBig = async (after: string): Promise<void> => {
      if (proxyBig === undefined) return;
      await waitUntilIdle(proxyBig.pid);
      rssBigSamples.push([after, memory(proxyBig.pid).rssMiB]);
    };
    if (wantBig) {
      proxyBig = await startProxy(resources, { ...onServers, name: `proxy-${big}`, sessionsPath: bigPath, expectedRoutes: opts.sessions });
      await sampleBig('start-up');
    }
    let proxySmall: RunningProxy | undefined;
    let refSmall: Listening | undefined;
    if (wantSmall) {
      proxySmall = await startProxy(resources, { ...onServers, name: 'proxy-1', sessionsPath: smallPath, expectedRoutes: 1 });
      refSmall = await startReferenceProxy(resources, { ...onServers, name: 'reference-1', sessionsPath: smallPath, expectedRoutes: 1 });
    }
    // JupyterHub's proxy with one default route to the same backend: the one-route figures only (it cannot route by cookie).
    const chpPeer = configurableHttpProxy();
    let chp: RunningPeer | undefined;
    if (wantSmall && chpPeer.main !== undefined) chp = await startConfigurableHttpProxy(resources, chpPeer, 'chp-1', fast.port, pinning.servers, ctx.cpuProfDir);
    else if (opts.only.has('throughput') || opts.only.has('latency') || opts.only.has('websocket')) peerSummary.push(skipped(chpPeer));
    const target = (name: string, l: Listening, cpuPid = l.pid): LoadTarget => ({ name, port: l.port, cpuPid, key: fastKey });

    if (opts.only.has('throughput')) {
      ctx.progress('\n== requests/s, latency and CPU per request: proxy, reference, nginx; 1 session and the large map');
      const targets: LoadTarget[] = [target(names.proxy, proxySmall!), target(names.ref, refSmall!), target(names.proxyBig, proxyBig!)];
      if (chp !== undefined) targets.push(target(names.chp, chp));
      if (nginx !== undefined) {
        const upstream = `127.0.0.1:${fast.port}`;
        const nginxSmall = await startNginx(resources, nginx, 'nginx-1', (prefix, port) => referenceConfig(prefix, port, COOKIE, [{ key: fastKey, upstream }], 1), pinning.servers);
        const routes: NginxRoute[] = fillers.map(([key]) => ({ key, upstream: '127.0.0.1:9' }));
        routes.push({ key: fastKey, upstream });
        const nginxBig = await startNginx(resources, nginx, `nginx-${big}`, (prefix, port) => referenceConfig(prefix, port, COOKIE, routes, routes.length), pinning.servers);
        targets.push(
          { name: names.nginx, port: nginxSmall.port, cpuPid: nginxSmall.workerPid, key: fastKey },
          { name: names.nginxBig, port: nginxBig.port, cpuPid: nginxBig.workerPid, key: fastKey },
        );
      }
      const results = await interleavedRounds(ctx, targets);
      const get = (name: string): Round[] => results.get(name) ?? [];
      const lines = [`\n## Requests/s, latency, CPU per request (${ctx.connections} connections, ${ctx.seconds} s rounds)`, roundsTable([...results])];
      const rps = ratios(get(names.proxy), get(names.ref), (r) => r.rps);
      const cpu = ratios(get(names.proxy), get(names.ref), (r) => r.cpuUs);
      figures.rpsRatio = spread(rps);
      figures.cpuRatio = spread(cpu);
      lines.push(ratioLine('requests/s, proxy / reference, 1 session', rps));
      lines.push(ratioLine('CPU per request, proxy / reference, 1 session', cpu));
      const bigOverSmall = ratios(get(names.proxyBig), get(names.proxy), (r) => r.rps);
      if (nginx !== undefined) {
        const nginxDrift = ratios(get(names.nginxBig), get(names.nginx), (r) => r.rps);
        const normalised = bigOverSmall.map((v, i) => v / nginxDrift[i]);
        figures.bigOverSmall = spread(normalised);
        lines.push(ratioLine(`requests/s, proxy at ${big} / at 1 session, raw`, bigOverSmall));
        lines.push(ratioLine(`requests/s, nginx at ${big} / at 1 session (its own drift)`, nginxDrift));
        lines.push(ratioLine(`requests/s, proxy at ${big} / at 1 session, ÷ nginx's`, normalised));
        lines.push(ratioLine('yardstick: requests/s, proxy / nginx, 1 session', ratios(get(names.proxy), get(names.nginx), (r) => r.rps)));
        lines.push(ratioLine('yardstick: requests/s, reference / nginx, 1 session', ratios(get(names.ref), get(names.nginx), (r) => r.rps)));
        lines.push(ratioLine('yardstick: CPU per request, proxy / nginx, 1 session', ratios(get(names.proxy), get(names.nginx), (r) => r.cpuUs)));
      } else {
        figures.bigOverSmall = spread(bigOverSmall);
        lines.push(ratioLine(`requests/s, proxy at ${big} / at 1 session (no nginx to normalise by)`, bigOverSmall));
      }
      lines.push(`RSS after the rounds: proxy with 1 session ${fmt(memory(proxySmall!.pid).rssMiB, 1)} MiB, reference ${fmt(memory(refSmall!.pid).rssMiB, 1)} MiB`);
      if (chp !== undefined) {
        peerFigure('chp_rps_ratio', 'requests/s, ours ÷ configurable-http-proxy (one route)', ratios(get(names.proxy), get(names.chp), (r) => r.rps));
        peerFigure('chp_cpu_ratio', 'CPU per request, ours ÷ configurable-http-proxy (one route)', ratios(get(names.proxy), get(names.chp), (r) => r.cpuUs));
        await waitUntilIdle(proxySmall!.pid);
        await waitUntilIdle(chp.pid);
        const [ours, theirs] = [memory(proxySmall!.pid).rssMiB, memory(chp.pid).rssMiB];
        peerFigure('chp_rss_ratio', `RSS once idle, ours ÷ configurable-http-proxy (${fmt(ours, 1)} / ${fmt(theirs, 1)} MiB)`, [ours / theirs]);
      }
      report.push(lines.join('\n'));
      await sampleBig('load rounds');
    }

    if (opts.only.has('latency')) {
      ctx.progress('\n== latency added at light load: 1 connection, direct to the backend and through each proxy');
      const light = { seconds: ctx.seconds, connections: 1 };
      const backendCpu = fast.pid;
      const targets = [target(names.direct, fast, backendCpu), target(names.proxy, proxySmall!), target(names.ref, refSmall!)];
      if (chp !== undefined) targets.push(target(names.chp, chp));
      const results = await interleavedRounds(ctx, targets, light);
      const get = (name: string): Round[] => results.get(name) ?? [];
      const added = (name: string, figure: (r: Round) => number): number[] => get(name).map((r, i) => figure(r) - figure(get(names.direct)[i]));
      figures.addedP50Ms = spread(added(names.proxy, (r) => r.p50));
      figures.addedP99Ms = spread(added(names.proxy, (r) => r.p99));
      figures.refAddedP50Ms = spread(added(names.ref, (r) => r.p50));
      figures.refAddedP99Ms = spread(added(names.ref, (r) => r.p99));
      report.push(
        [
          `\n## Latency added at light load (1 connection, ${ctx.seconds} s rounds): through the proxy minus direct to the backend`,
          roundsTable([...results], 3),
          ratioLine('p50 added by the proxy, ms', added(names.proxy, (r) => r.p50), 3),
          ratioLine('p99 added by the proxy, ms', added(names.proxy, (r) => r.p99), 3),
          ratioLine('p50 added by the reference, ms', added(names.ref, (r) => r.p50), 3),
          ratioLine('p99 added by the reference, ms', added(names.ref, (r) => r.p99), 3),
        ].join('\n'),
      );
      if (chp !== undefined) {
        const theirs = added(names.chp, (r) => r.p50);
        peerFigure('chp_p50_added_ratio', 'latency added at 1 connection, p50, ours ÷ configurable-http-proxy', added(names.proxy, (r) => r.p50).map((v, i) => v / theirs[i]));
      }
    }
    if (opts.only.has('routing') && proxySmall !== undefined) {
      ctx.progress('\n== Interactive Tools routing (path, host) vs cookie routing, 1 and the large number of entry points');
      const it = await itRoutingPhase(ctx, { backendPort: fast.port, sessions: opts.sessions, cookieSmall: proxySmall, cookieBig: proxyBig, key: fastKey });
      if (it.figures !== undefined) {
        figures.itOverCookieSmall = it.figures.small;
        figures.itOverCookieBig = it.figures.big;
      }
      const lines = [`\n## Interactive Tools routing / cookie routing (${ctx.connections} connections, ${ctx.seconds} s rounds)`];
      if (it.results !== undefined) lines.push(roundsTable([...it.results]));
      lines.push(it.report);
      report.push(lines.join('\n'));
      if (it.peerSkipped !== undefined) peerSummary.push(it.peerSkipped);
      for (const [key, { label, values }] of it.peer ?? []) peerFigure(key, label, values);
      await sampleBig('IT rounds');
    }
    if (proxySmall !== undefined) await resources.stop(proxySmall.proxy.child);
    if (chp !== undefined) await resources.stop(chp.child);

    if (opts.only.has('postgres')) {
      ctx.progress(`\n== PostgreSQL map: requests/s at 1 and ${opts.sessions} entry points, commit → routed, latency during full re-reads`);
      const pg = await postgresPhase(ctx, { backendPort: fast.port, entryPoints: opts.sessions, saves: opts.inserts });
      if (pg.figures !== undefined) {
        figures.pgBigOverSmall = pg.figures.bigOverSmall;
        figures.pgCommitMs = pg.figures.commitMs;
        figures.pgStallP99Ratio = pg.figures.stallP99Ratio;
        figures.pgRereadP99Ratio = pg.figures.rereadP99Ratio;
      }
      report.push(`\n## PostgreSQL map (gx-it-proxy's README trigger, routed by Host; ${ctx.connections} connections)\n${pg.report}`);
    }

    if (opts.only.has('commit') && proxyBig !== undefined) {
      ctx.progress(`\n== commit → routed at ${opts.sessions} sessions, ${opts.inserts} inserts`);
      const times = await commitToRouted(ctx, bigWriter, proxyBig, fast.port, opts.inserts);
      figures.commitMs = times;
      const s = spread(times);
      report.push(
        `\n## Commit → routed at ${opts.sessions} sessions (${opts.inserts} inserts with Galaxy's statements, polled with the new cookie)\n` +
          `ms: ${fmtSpread(s, 0)}; each ${times.map((t) => fmt(t, 0)).join(' ')}`,
      );
      await sampleBig(`${opts.inserts} inserts`);
    }

    if (opts.only.has('churn') && proxyBig !== undefined) {
      ctx.progress(`\n== latency at ${opts.sessions} sessions, with and without a write every ${INSERT_EVERY_MS} ms`);
      const { quiet, busy, inserts } = await latencyUnderChurn(ctx, target(names.proxyBig, proxyBig), bigWriter, fast.port);
      const p99 = ratios(busy, quiet, (r) => r.p99);
      figures.churnP99Ratio = spread(p99);
      report.push(
        [
          `\n## Latency at ${opts.sessions} sessions while Galaxy writes a session every ${INSERT_EVERY_MS} ms (${inserts} writes) vs no writes`,
          roundsTable([
            ['no writes', quiet],
            ['writes', busy],
          ]),
          ratioLine('p99, writes / no writes', p99),
          ratioLine('max, writes / no writes', ratios(busy, quiet, (r) => r.max)),
        ].join('\n'),
      );
      await sampleBig('write rounds');
    }

    if (opts.only.has('memory') && proxyBig !== undefined) {
      ctx.progress(`\n== memory at ${opts.sessions} sessions: a full re-read (SIGHUP), and the reference holding the same map`);
      const reread = await fullReread(proxyBig);
      figures.rssPeakMiB = reread.peakMiB;
      await sampleBig('full re-read');
      const refBig = await startReferenceProxy(resources, { ...onServers, name: `reference-${big}`, sessionsPath: bigPath, expectedRoutes: mapRows(bigPath) });
      await waitUntilIdle(refBig.pid);
      const refMiB = memory(refBig.pid);
      await resources.stop(refBig.child);
      report.push(
        `\n## Memory at ${opts.sessions} sessions\n` +
          `full re-read (SIGHUP, ${fmt(reread.ms, 0)} ms by the proxy's log): RSS ${fmt(reread.beforeMiB, 1)} MiB before, peak ${fmt(reread.peakMiB, 1)} MiB (sampled every 5 ms), ${fmt(reread.afterMiB, 1)} MiB once idle after\n` +
          `the bare reference holding the same map (read once, never re-read): RSS ${fmt(refMiB.rssMiB, 1)} MiB, VmHWM ${fmt(refMiB.hwmMiB, 1)} MiB\n` +
          `heap breakdown (main thread and reader thread): node --expose-gc --import tsx test/bench/heap-breakdown.ts ${opts.sessions}`,
      );
      extra.ref_rss_big_mib = refMiB.rssMiB.toFixed(1);
    }

    if (proxyBig !== undefined) {
      // The proxy's own account of each map update: `ms` from the change
      // noticed to the new routes in use, `update` how (see README "Logs").
      const byKind = new Map<string, number[]>();
      for (const line of proxyBig.proxy.logs.withMsg(MAP_LOG.reloaded)) {
        const kind = typeof line.update === 'string' ? line.update : 'reload';
        byKind.set(kind, [...(byKind.get(kind) ?? []), Number(line.ms)]);
      }
      const updates = [...byKind].map(([kind, ms]) => `${ms.length} ${kind} (ms ${fmtSpread(spread(ms), 1)})`).join(', ');
      const { hwmMiB } = memory(proxyBig.pid);
      figures.rssSteadyMiB = Math.max(...rssBigSamples.map(([, v]) => v));
      extra.rss_hwm_mib = hwmMiB.toFixed(1);
      report.push(
        `\n## The proxy at ${opts.sessions} sessions\n` +
          `RSS once idle after: ${rssBigSamples.map(([after, v]) => `${after} ${fmt(v, 1)} MiB`).join(', ')}; VmHWM over its life ${fmt(hwmMiB, 1)} MiB\n` +
          `map updates as the proxy logged them: ${updates}`,
      );
      await resources.stop(proxyBig.proxy.child);
    }

    if (opts.only.has('streaming') || opts.only.has('websocket')) {
      const nodePath = join(resources.dir, 'node.sqlite');
      new GalaxySqliteWriter(nodePath).addSession(nodeKey, '127.0.0.1', nodeBackend.port);
      const proxyNode = await startProxy(resources, { ...onServers, name: 'proxy-node', sessionsPath: nodePath, expectedRoutes: 1 });

      if (opts.only.has('streaming')) {
        ctx.progress(`\n== RSS while streaming ${opts.streamMiB} MiB up and down (fresh proxy, then a fresh reference)`);
        const s = await streamingMemory(ctx, 'proxy', proxyNode.pid, proxyNode.port, nodeKey, opts.streamMiB);
        figures.streamGrowthMiB = Math.max(s.uploadGrowthMiB, s.downloadGrowthMiB);
        // The bare reference streams the same bytes, as the yardstick of what
        // Node + http-proxy itself grows by; stopped at once so that the
        // WebSocket phase starts a fresh one.
        const refStream = await startReferenceProxy(resources, { ...onServers, name: 'reference-stream', sessionsPath: nodePath, expectedRoutes: 1 });
        const r = await streamingMemory(ctx, 'reference', refStream.pid, refStream.port, nodeKey, opts.streamMiB);
        await resources.stop(refStream.child);
        const line = (who: string, f: typeof s): string =>
          `${who}: RSS before ${fmt(f.baselineMiB, 1)} MiB; peak growth upload +${fmt(f.uploadGrowthMiB, 1)} MiB (${fmt(f.uploadMiBs, 0)} MiB/s), ` +
          `download +${fmt(f.downloadGrowthMiB, 1)} MiB (${fmt(f.downloadMiBs, 0)} MiB/s); VmHWM +${fmt(f.hwmGrowthMiB, 1)} MiB`;
        report.push(`\n## Streaming ${opts.streamMiB} MiB through the proxy (Node backend)\n${line('proxy', s)}\n${line('reference', r)}`);
        figures.refStreamGrowthMiB = Math.max(r.uploadGrowthMiB, r.downloadGrowthMiB);
        extra.ref_stream_growth_mib = figures.refStreamGrowthMiB.toFixed(1);
      }

      if (opts.only.has('websocket')) {
        ctx.progress('\n== WebSocket echo round trips on one connection: proxy, reference, nginx');
        const refNode = await startReferenceProxy(resources, { ...onServers, name: 'reference-node', sessionsPath: nodePath, expectedRoutes: 1 });
        const servers = new Map<string, { port: number; pid: number }>([
          ['proxy', proxyNode],
          ['reference', refNode],
        ]);
        if (nginx !== undefined) {
          const nginxWs = await startNginx(
            resources,
            nginx,
            'nginx-ws',
            (prefix, port) => referenceConfig(prefix, port, COOKIE, [{ key: nodeKey, upstream: `127.0.0.1:${nodeBackend.port}` }], 1),
            pinning.servers,
          );
          servers.set('nginx', { port: nginxWs.port, pid: nginxWs.workerPid });
        }
        if (chpPeer.main !== undefined) {
          const chpWs = await startConfigurableHttpProxy(resources, chpPeer, 'chp-ws', nodeBackend.port, pinning.servers);
          servers.set('configurable-http-proxy', chpWs);
        }
        const echoes = await interleave(ctx, [...servers.keys()], ctx.rounds, async (name) => {
          const { port, pid } = servers.get(name)!;
          return ctx.steady.measure(name, () => webSocketRoundTrips(ctx, name, port, pid, nodeKey));
        });
        const get = (name: string): EchoRound[] => echoes.get(name) ?? [];
        const ws = ratios(get('proxy'), get('reference'), (r) => r.rate);
        figures.wsRatio = spread(ws);
        const wsCpu = ratios(get('proxy'), get('reference'), (r) => r.cpuUs);
        extra.ws_cpu_ratio = spread(wsCpu).median.toFixed(4);
        const lines = ['\n## WebSocket echo round trips/s on one connection (Node echo backend)'];
        for (const [name, rounds] of echoes) {
          lines.push(`${name}: ${fmtSpread(spread(rounds.map((r) => r.rate)), 0)}; CPU µs per round trip ${fmtSpread(spread(rounds.map((r) => r.cpuUs)), 1)}`);
        }
        lines.push(ratioLine('proxy / reference', ws));
        lines.push(ratioLine('CPU per round trip, proxy / reference', wsCpu));
        if (servers.has('nginx')) lines.push(ratioLine('yardstick: proxy / nginx', ratios(get('proxy'), get('nginx'), (r) => r.rate)));
        if (servers.has('configurable-http-proxy')) {
          peerFigure('chp_ws_ratio', 'WebSocket round trips/s, ours ÷ configurable-http-proxy', ratios(get('proxy'), get('configurable-http-proxy'), (r) => r.rate));
          peerFigure('chp_ws_cpu_ratio', 'CPU per WebSocket round trip, ours ÷ configurable-http-proxy', ratios(get('proxy'), get('configurable-http-proxy'), (r) => r.cpuUs));
        }
        report.push(lines.join('\n'));
      }
      await resources.stop(proxyNode.proxy.child);
    }

    if (peerSummary.length > 0) report.push(`\n## Ours ÷ the proxies an admin would pick instead (median, IQR, range of the per-round ratios)\n${peerSummary.join('\n')}`);
    report.push(`\n## How steady the machine was\n${ctx.steady.summary()}`);
    extra.rounds_discarded = ctx.steady.discarded;
    extra.rounds_unsteady = ctx.steady.unsteady;
    extra.seconds = Math.round((Date.now() - t0) / 1000);
    report.push(`\n## Targets (bench took ${fmt((Date.now() - t0) / 1000, 0)} s; load average at end ${loadavg().map((l) => fmt(l)).join(' ')})`);
    report.push(targetsTable(figures, opts.sessions, opts.streamMiB));
    report.push('');
    report.push(machineLine(figures, opts.sessions, opts.streamMiB, extra));
    process.stdout.write(`\n${report.join('\n')}\n`);
    if (opts.json !== undefined) writeFileSync(opts.json, `${JSON.stringify({ machine, figures, extra }, null, 2)}\n`);
    if (ctx.cpuProfDir !== undefined) ctx.progress(`CPU profiles in ${ctx.cpuProfDir} (one directory per proxy, the reader thread beside the main thread; summarise with: node --import tsx test/bench/profile-top.ts <dir>/proxy-1)`);
  } finally {
    await resources.close();
  }
}

/** nginx's `return 200` as the backend, on the load side's core. */
async function backendListening(ctx: BenchContext, nginx: string): Promise<Listening> {
  const backend = await startNginx(ctx.resources, nginx, 'backend', backendConfig, ctx.pinning.load);
  return { name: 'nginx backend', pid: backend.workerPid, port: backend.port };
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
