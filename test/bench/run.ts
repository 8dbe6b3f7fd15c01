/**
 * `npm run bench`: the proxy built from this tree against nginx on the same
 * backend and machine, with the issue's targets judged at the end. Reports;
 * never part of `npm test`. See README "Performance" and `--help`.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { GalaxySqliteWriter } from '../helpers/galaxy-map.js';
import { latencyUnderChurn, INSERT_EVERY_MS } from './churn.js';
import { commitToRouted } from './commit-latency.js';
import { COOKIE, fmt, median, newSessionKey, table, type BenchContext } from './context.js';
import { pickGenerator, type Generator } from './load.js';
import { backendConfig, findNginx, referenceConfig, startNginx, type NginxRoute } from './nginx.js';
import { memory, waitUntilIdle } from './proc-stats.js';
import { BenchResources } from './processes.js';
import { interleavedRounds, ratios, type LoadTarget, type Round } from './rounds.js';
import { startNodeBackend, startProxy, type RunningProxy } from './servers.js';
import { streamingMemory } from './streaming.js';
import { targetsTable, type Figures } from './targets.js';
import { webSocketRoundTrips } from './websocket.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';

const PHASES = ['throughput', 'commit', 'churn', 'streaming', 'websocket'] as const;
type Phase = (typeof PHASES)[number];

const USAGE = `Usage: npm run bench -- [options]

  --rounds <n>        interleaved rounds per comparison (default 5, at least 3)
  --seconds <s>       seconds of load per round (default 5)
  --connections <n>   concurrent connections of the load generator (default 32)
  --sessions <n>      sessions in the large map (default 100000)
  --inserts <n>       new sessions timed from commit to routed (default 20)
  --stream-mib <n>    size of the streamed upload and download (default 200)
  --only <list>       comma-separated phases: ${PHASES.join(',')}
  --no-nginx          no nginx even if installed (Node backend, no reference)
  --load <gen>        wrk or autocannon (default: wrk when installed)
  --cpu-prof <dir>    write a V8 CPU profile of each proxy into <dir>
  --json <file>       also write the figures as JSON
`;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '5' },
      seconds: { type: 'string', default: '5' },
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

function roundsTable(columns: readonly [string, Round[]][]): string {
  const rows: string[][] = [];
  for (const [name, rounds] of columns) {
    rounds.forEach((r, i) => rows.push([name, String(i + 1), fmt(r.rps, 0), fmt(r.p50), fmt(r.p99), fmt(r.max), fmt(r.cpuUs, 1)]));
    rows.push([
      name,
      'median',
      fmt(median(rounds.map((r) => r.rps)), 0),
      fmt(median(rounds.map((r) => r.p50))),
      fmt(median(rounds.map((r) => r.p99))),
      fmt(median(rounds.map((r) => r.max))),
      fmt(median(rounds.map((r) => r.cpuUs)), 1),
    ]);
  }
  return table(['target', 'round', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'CPU µs/req'], rows);
}

function ratioLine(label: string, values: number[]): string {
  return `${label}: ${values.map((v) => fmt(v)).join(', ')} → median ${fmt(median(values))}`;
}

async function main(): Promise<void> {
  const opts = parseOptions();
  const resources = new BenchResources();
  const report: string[] = [];
  const figures: Figures = {};
  const t0 = Date.now();
  try {
    const nginx = opts.noNginx ? undefined : findNginx();
    const ctx: BenchContext = {
      resources,
      generator: opts.load ?? pickGenerator(),
      nginx,
      rounds: opts.rounds,
      seconds: opts.seconds,
      connections: opts.connections,
      bigSessions: opts.sessions,
      cpuProfDir: opts.cpuProfDir,
      progress: (line) => process.stderr.write(`${line}\n`),
    };
    if (ctx.cpuProfDir !== undefined) mkdirSync(ctx.cpuProfDir, { recursive: true });
    const machine = [
      `date: ${new Date().toISOString()}`,
      `machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${fmt(totalmem() / 2 ** 30, 0)} GiB RAM, load average at start ${loadavg().map((l) => fmt(l)).join(' ')}`,
      `node ${process.version}; load: ${ctx.generator === 'wrk' ? toolVersion('wrk', ['--version']) : 'autocannon (in the bench process)'}, ${ctx.connections} connections, ${ctx.rounds} interleaved rounds of ${ctx.seconds} s`,
      `nginx: ${nginx === undefined ? 'not used — no reference figures, Node backend' : toolVersion(nginx, ['-v'])}`,
    ];
    ctx.progress(machine.join('\n'));

    const nodeBackend = await startNodeBackend(resources);
    const fast = nginx === undefined ? nodeBackend : await startNginx(resources, nginx, 'backend', backendConfig);
    machine.push(`backend: ${nginx === undefined ? 'Node http server answering 200 "ok" (test/bench/node-backend.ts)' : 'nginx `return 200 "ok"`'} on 127.0.0.1:${fast.port}`);
    report.push(machine.join('\n'));

    const big = opts.sessions % 1000 === 0 ? `${opts.sessions / 1000}k` : String(opts.sessions);
    const names = { proxySmall: 'proxy 1 session', nginxSmall: 'nginx 1 session', proxyBig: `proxy ${big}`, nginxBig: `nginx ${big}` };
    const fastKey = newSessionKey();
    const nodeKey = newSessionKey();
    const wantBig = opts.only.has('throughput') || opts.only.has('commit') || opts.only.has('churn');

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

    let proxyBig: RunningProxy | undefined;
    // RSS of the large-map proxy once idle after each phase.
    const rssBigSamples: [string, number][] = [];
    const sampleBig = async (after: string): Promise<void> => {
      if (proxyBig === undefined) return;
      await waitUntilIdle(proxyBig.pid);
      rssBigSamples.push([after, memory(proxyBig.pid).rssMiB]);
    };
    if (wantBig) {
      proxyBig = await startProxy(resources, {
        name: `proxy-${big}`,
        sessionsPath: bigPath,
        cookie: COOKIE,
        expectedRoutes: opts.sessions,
        cpuProfDir: ctx.cpuProfDir,
      });
      await sampleBig('start-up');
    }

    if (opts.only.has('throughput')) {
      ctx.progress('\n== requests/s, latency and CPU per request: small map and large map, proxy and nginx');
      const proxySmall = await startProxy(resources, { name: 'proxy-1', sessionsPath: smallPath, cookie: COOKIE, expectedRoutes: 1, cpuProfDir: ctx.cpuProfDir });
      const targets: LoadTarget[] = [{ name: names.proxySmall, port: proxySmall.port, cpuPid: proxySmall.pid, key: fastKey }];
      let nginxSmall: LoadTarget | undefined;
      let nginxBig: LoadTarget | undefined;
      if (nginx !== undefined) {
        const upstream = `127.0.0.1:${fast.port}`;
        const nginxSmallProc = await startNginx(resources, nginx, 'nginx-1', (prefix, port) => referenceConfig(prefix, port, COOKIE, [{ key: fastKey, upstream }], 1));
        nginxSmall = { name: names.nginxSmall, port: nginxSmallProc.port, cpuPid: nginxSmallProc.workerPid, key: fastKey };
        targets.push(nginxSmall);
      }
      targets.push({ name: names.proxyBig, port: proxyBig!.port, cpuPid: proxyBig!.pid, key: fastKey });
      if (nginx !== undefined) {
        const routes: NginxRoute[] = fillers.map(([key]) => ({ key, upstream: '127.0.0.1:9' }));
        routes.push({ key: fastKey, upstream: `127.0.0.1:${fast.port}` });
        const nginxBigProc = await startNginx(resources, nginx, `nginx-${big}`, (prefix, port) => referenceConfig(prefix, port, COOKIE, routes, routes.length));
        nginxBig = { name: names.nginxBig, port: nginxBigProc.port, cpuPid: nginxBigProc.workerPid, key: fastKey };
        targets.push(nginxBig);
      }
      const results = await interleavedRounds(ctx, targets);
      const get = (name: string): Round[] => results.get(name) ?? [];
      const lines = [`\n## Requests/s, latency, CPU per request (${ctx.connections} connections, ${ctx.seconds} s rounds)`, roundsTable([...results])];
      const bigOverSmall = ratios(get(names.proxyBig), get(names.proxySmall), (r) => r.rps);
      figures.bigOverSmall = median(bigOverSmall);
      lines.push(ratioLine(`requests/s, proxy at ${big} / at 1 session, per round`, bigOverSmall));
      if (nginxSmall !== undefined && nginxBig !== undefined) {
        const rps = ratios(get(names.proxySmall), get(names.nginxSmall), (r) => r.rps);
        const cpu = ratios(get(names.proxySmall), get(names.nginxSmall), (r) => r.cpuUs);
        figures.rpsRatio = median(rps);
        figures.cpuRatio = median(cpu);
        lines.push(ratioLine('requests/s, proxy / nginx, 1 session, per round', rps));
        lines.push(ratioLine('CPU per request, proxy / nginx, 1 session, per round', cpu));
        lines.push(ratioLine(`requests/s, proxy / nginx, ${big} sessions, per round`, ratios(get(names.proxyBig), get(names.nginxBig), (r) => r.rps)));
        lines.push(ratioLine(`CPU per request, proxy / nginx, ${big} sessions, per round`, ratios(get(names.proxyBig), get(names.nginxBig), (r) => r.cpuUs)));
      }
      lines.push(`RSS of the proxy with 1 session after the rounds: ${fmt(memory(proxySmall.pid).rssMiB, 1)} MiB`);
      report.push(lines.join('\n'));
      await sampleBig('load rounds');
      await resources.stop(proxySmall.proxy.child);
    }

    if (opts.only.has('commit') && proxyBig !== undefined) {
      ctx.progress(`\n== commit → routed at ${opts.sessions} sessions, ${opts.inserts} inserts`);
      const times = await commitToRouted(ctx, bigWriter, proxyBig, fast.port, opts.inserts);
      figures.commitMs = times;
      report.push(
        `\n## Commit → routed at ${opts.sessions} sessions (${opts.inserts} inserts with Galaxy's statements, polled with the new cookie)\n` +
          `ms: ${times.map((t) => fmt(t, 0)).join(' ')} → median ${fmt(median(times), 0)}, max ${fmt(Math.max(...times), 0)}`,
      );
      await sampleBig(`${opts.inserts} inserts`);
    }

    if (opts.only.has('churn') && proxyBig !== undefined) {
      ctx.progress(`\n== latency at ${opts.sessions} sessions, with and without a write every ${INSERT_EVERY_MS} ms`);
      const { quiet, busy, inserts } = await latencyUnderChurn(
        ctx,
        { name: names.proxyBig, port: proxyBig.port, cpuPid: proxyBig.pid, key: fastKey },
        bigWriter,
        fast.port,
      );
      const p99 = ratios(busy, quiet, (r) => r.p99);
      const max = ratios(busy, quiet, (r) => r.max);
      figures.churnP99Ratio = median(p99);
      report.push(
        [
          `\n## Latency at ${opts.sessions} sessions while Galaxy writes a session every ${INSERT_EVERY_MS} ms (${inserts} writes) vs no writes`,
          roundsTable([
            ['no writes', quiet],
            ['writes', busy],
          ]),
          ratioLine('p99, writes / no writes, per round', p99),
          ratioLine('max, writes / no writes, per round', max),
        ].join('\n'),
      );
      await sampleBig('write rounds');
    }

    if (proxyBig !== undefined) {
      // The proxy's own account of each map update: `ms` from the change
      // noticed to the new routes in use, `update` how (see README "Logs").
      const byKind = new Map<string, number[]>();
      for (const line of proxyBig.proxy.logs.withMsg(MAP_LOG.reloaded)) {
        const kind = typeof line.update === 'string' ? line.update : 'reload';
        byKind.set(kind, [...(byKind.get(kind) ?? []), Number(line.ms)]);
      }
      const updates = [...byKind]
        .map(([kind, ms]) => `${ms.length} ${kind} (ms median ${fmt(median(ms), 1)}, max ${fmt(Math.max(...ms), 1)})`)
        .join(', ');
      const { hwmMiB } = memory(proxyBig.pid);
      figures.rssBigMiB = Math.max(...rssBigSamples.map(([, v]) => v));
      report.push(
        `\n## The proxy at ${opts.sessions} sessions\n` +
          `RSS once idle after: ${rssBigSamples.map(([after, v]) => `${after} ${fmt(v, 1)} MiB`).join(', ')}; VmHWM ${fmt(hwmMiB, 1)} MiB\n` +
          `map updates as the proxy logged them: ${updates}`,
      );
      await resources.stop(proxyBig.proxy.child);
    }

    if (opts.only.has('streaming') || opts.only.has('websocket')) {
      const nodePath = join(resources.dir, 'node.sqlite');
      new GalaxySqliteWriter(nodePath).addSession(nodeKey, '127.0.0.1', nodeBackend.port);
      const proxyNode = await startProxy(resources, { name: 'proxy-node', sessionsPath: nodePath, cookie: COOKIE, expectedRoutes: 1, cpuProfDir: ctx.cpuProfDir });

      if (opts.only.has('streaming')) {
        ctx.progress(`\n== RSS while streaming ${opts.streamMiB} MiB up and down (fresh proxy)`);
        const s = await streamingMemory(ctx, proxyNode.pid, proxyNode.port, nodeKey, opts.streamMiB);
        figures.streamGrowthMiB = Math.max(s.uploadGrowthMiB, s.downloadGrowthMiB);
        report.push(
          `\n## Streaming ${opts.streamMiB} MiB through the proxy (Node backend)\n` +
            `RSS before ${fmt(s.baselineMiB, 1)} MiB; peak growth upload +${fmt(s.uploadGrowthMiB, 1)} MiB (${fmt(s.uploadMiBs, 0)} MiB/s), ` +
            `download +${fmt(s.downloadGrowthMiB, 1)} MiB (${fmt(s.downloadMiBs, 0)} MiB/s); VmHWM +${fmt(s.hwmGrowthMiB, 1)} MiB`,
        );
      }

      if (opts.only.has('websocket')) {
        ctx.progress('\n== WebSocket echo round trips on one connection');
        let nginxWs: { port: number } | undefined;
        if (nginx !== undefined) {
          nginxWs = await startNginx(resources, nginx, 'nginx-ws', (prefix, port) =>
            referenceConfig(prefix, port, COOKIE, [{ key: nodeKey, upstream: `127.0.0.1:${nodeBackend.port}` }], 1),
          );
        }
        const proxyRates: number[] = [];
        const nginxRates: number[] = [];
        for (let i = 0; i < ctx.rounds; i++) {
          ctx.progress(` round ${i + 1}/${ctx.rounds}`);
          proxyRates.push(await webSocketRoundTrips(ctx, 'proxy', proxyNode.port, nodeKey));
          if (nginxWs !== undefined) nginxRates.push(await webSocketRoundTrips(ctx, 'nginx', nginxWs.port, nodeKey));
        }
        const lines = [
          '\n## WebSocket echo round trips/s on one connection (Node echo backend)',
          `proxy: ${proxyRates.map((v) => fmt(v, 0)).join(', ')} → median ${fmt(median(proxyRates), 0)}`,
        ];
        if (nginxRates.length > 0) {
          const r = proxyRates.map((v, i) => v / nginxRates[i]);
          figures.wsRatio = median(r);
          lines.push(`nginx: ${nginxRates.map((v) => fmt(v, 0)).join(', ')} → median ${fmt(median(nginxRates), 0)}`);
          lines.push(ratioLine('proxy / nginx, per round', r));
        }
        report.push(lines.join('\n'));
      }
      await resources.stop(proxyNode.proxy.child);
    }

    report.push(`\n## Targets (bench took ${fmt((Date.now() - t0) / 1000, 0)} s; load average at end ${loadavg().map((l) => fmt(l)).join(' ')})`);
    report.push(targetsTable(figures, opts.sessions, opts.streamMiB));
    process.stdout.write(`\n${report.join('\n')}\n`);
    if (opts.json !== undefined) writeFileSync(opts.json, `${JSON.stringify({ machine, figures }, null, 2)}\n`);
    if (ctx.cpuProfDir !== undefined) ctx.progress(`CPU profiles in ${ctx.cpuProfDir} (summarise with: node --import tsx test/bench/profile-top.ts <file>)`);
  } finally {
    await resources.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
