import { cookieHeader, fmt, REQUEST_PATH, type BenchContext } from './context.js';
import { runLoad, type LoadResult } from './load.js';
import { cpuSeconds } from './proc-stats.js';
import type { Steadiness } from './steady.js';

/** One server under test: where to send load, and whose CPU time to count. */
export interface LoadTarget {
  readonly name: string;
  readonly port: number;
  /** The process doing the proxying (our proxy, the reference, nginx's worker). */
  readonly cpuPid: number;
  /** Session cookie value routed to the fast backend (none: sent without a cookie). */
  readonly key: string | undefined;
  /** Request path; Jupyter's contents listing by default. */
  readonly path?: string;
  /** Host header (Interactive Tools routing by host); the address by default. */
  readonly host?: string;
}

export interface Round extends LoadResult {
  /** CPU time of `cpuPid` per request, in microseconds. */
  readonly cpuUs: number;
  readonly steadiness: Steadiness;
}

export interface LoadShape {
  readonly seconds: number;
  readonly connections: number;
}

function loadSpec(ctx: BenchContext, target: LoadTarget, shape: LoadShape) {
  const headers: Record<string, string> = {};
  if (target.key !== undefined) headers.Cookie = cookieHeader(target.key);
  if (target.host !== undefined) headers.Host = target.host;
  return {
    url: `http://127.0.0.1:${target.port}${target.path ?? REQUEST_PATH}`,
    headers,
    seconds: shape.seconds,
    connections: shape.connections,
    cores: ctx.pinning.load,
  };
}

/** Runs one round of load against `target` (again, if the machine was not steady), reading its CPU time before and after. */
export async function loadRound(ctx: BenchContext, target: LoadTarget, shape: LoadShape = ctx): Promise<Round> {
  const round = await ctx.steady.measure(target.name, async () => {
    const before = cpuSeconds(target.cpuPid);
    const result = await runLoad(ctx.resources, ctx.generator, loadSpec(ctx, target, shape));
    const cpu = cpuSeconds(target.cpuPid) - before;
    if (result.errors > 0) {
      throw new Error(`${target.name}: ${result.errors} failed requests out of ${result.requests}; the setup is broken`);
    }
    return { ...result, cpuUs: (cpu * 1e6) / result.requests };
  });
  const s = round.steadiness;
  ctx.progress(
    `  ${target.name.padEnd(20)} ${fmt(round.rps, 0).padStart(7)} req/s  p50 ${fmt(round.p50, 3)} ms  p99 ${fmt(round.p99, 3)} ms  ${fmt(round.cpuUs, 1)} µs CPU/req` +
      `  [probe ${fmt(s.probeMs[0], 3)}→${fmt(s.probeMs[1], 3)} ms, foreign ${fmt(s.foreign * 100, 0)} %${s.steady ? '' : ', UNSTEADY'}]`,
  );
  return round;
}

/**
 * Runs `measure` for every name, `rounds` times, interleaved, each round
 * starting one name further on (a b c, b c a, c a b, …) so that neither the
 * machine's drift nor the order favours one of them. Per-round ratios pair
 * the i-th result of each name.
 */
export async function interleave<T>(
  ctx: BenchContext,
  names: readonly string[],
  rounds: number,
  measure: (name: string) => Promise<T>,
): Promise<Map<string, T[]>> {
  const results = new Map<string, T[]>(names.map((n) => [n, []]));
  for (let i = 0; i < rounds; i++) {
    ctx.progress(` round ${i + 1}/${rounds}`);
    for (let k = 0; k < names.length; k++) {
      const name = names[(i + k) % names.length]!;
      results.get(name)!.push(await measure(name));
    }
  }
  return results;
}

/** Interleaved load rounds after one short unmeasured warm-up of each target (JIT, connection pools). */
export async function interleavedRounds(ctx: BenchContext, targets: readonly LoadTarget[], shape: LoadShape = ctx, rounds = ctx.rounds): Promise<Map<string, Round[]>> {
  for (const target of targets) await runLoad(ctx.resources, ctx.generator, loadSpec(ctx, target, { ...shape, seconds: 1 }));
  const byName = new Map(targets.map((t) => [t.name, t]));
  return interleave(ctx, [...byName.keys()], rounds, (name) => loadRound(ctx, byName.get(name)!, shape));
}

/** Per-round ratio a[i]/b[i] of one figure. */
export function ratios<T>(a: readonly T[], b: readonly T[], figure: (r: T) => number): number[] {
  return a.map((round, i) => figure(round) / figure(b[i]!));
}
