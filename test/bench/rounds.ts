import { cookieHeader, fmt, REQUEST_PATH, type BenchContext } from './context.js';
import { runLoad, type LoadResult } from './load.js';
import { cpuSeconds } from './proc-stats.js';

/** One proxy under test: where to send load, and whose CPU time to count. */
export interface LoadTarget {
  readonly name: string;
  readonly port: number;
  /** The process doing the proxying (our proxy, or nginx's worker). */
  readonly cpuPid: number;
  /** Session cookie value routed to the fast backend. */
  readonly key: string;
}

export interface Round extends LoadResult {
  /** CPU time of `cpuPid` per request, in microseconds. */
  readonly cpuUs: number;
}

/** Runs one round of load against `target`, reading its CPU time before and after. */
export async function loadRound(ctx: BenchContext, target: LoadTarget, seconds = ctx.seconds): Promise<Round> {
  const before = cpuSeconds(target.cpuPid);
  const result = await runLoad(ctx.resources, ctx.generator, {
    url: `http://127.0.0.1:${target.port}${REQUEST_PATH}`,
    headers: { Cookie: cookieHeader(target.key) },
    seconds,
    connections: ctx.connections,
  });
  const cpu = cpuSeconds(target.cpuPid) - before;
  if (result.errors > 0) {
    throw new Error(`${target.name}: ${result.errors} failed requests out of ${result.requests}; the setup is broken`);
  }
  const round = { ...result, cpuUs: (cpu * 1e6) / result.requests };
  ctx.progress(
    `  ${target.name.padEnd(18)} ${fmt(round.rps, 0).padStart(7)} req/s  p50 ${fmt(round.p50)} ms  p99 ${fmt(round.p99)} ms  max ${fmt(round.max)} ms  ${fmt(round.cpuUs, 1)} µs CPU/req`,
  );
  return round;
}

/**
 * Interleaved rounds (a, b, c, a, b, c, …) so that the machine's drift (other
 * users of a shared box) hits every target alike; each target gets one short
 * unmeasured warm-up first (JIT, connection pools).
 */
export async function interleavedRounds(ctx: BenchContext, targets: readonly LoadTarget[]): Promise<Map<string, Round[]>> {
  const results = new Map<string, Round[]>(targets.map((t) => [t.name, []]));
  for (const target of targets) {
    await runLoad(ctx.resources, ctx.generator, {
      url: `http://127.0.0.1:${target.port}${REQUEST_PATH}`,
      headers: { Cookie: cookieHeader(target.key) },
      seconds: 2,
      connections: ctx.connections,
    });
  }
  for (let i = 0; i < ctx.rounds; i++) {
    ctx.progress(` round ${i + 1}/${ctx.rounds}`);
    for (const target of targets) results.get(target.name)!.push(await loadRound(ctx, target));
  }
  return results;
}

/** Per-round ratio a[i]/b[i] of one figure. */
export function ratios(a: readonly Round[], b: readonly Round[], figure: (r: Round) => number): number[] {
  return a.map((round, i) => figure(round) / figure(b[i]));
}
