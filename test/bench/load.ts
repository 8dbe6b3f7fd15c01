import { once } from 'node:events';
import { existsSync } from 'node:fs';
import autocannon from 'autocannon';
import type { BenchResources } from './processes.js';
import { onCores } from './steady.js';

/** One round of load against one URL. Latencies in milliseconds. */
export interface LoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** Responses that were not 2xx/3xx plus socket errors: must be 0 for a valid round. */
  readonly errors: number;
}

export interface LoadSpec {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly seconds: number;
  readonly connections: number;
  /** Cores wrk runs on (taskset), or anywhere. */
  readonly cores?: string | undefined;
}

/** Which generator runs the load. */
export type Generator = 'wrk' | 'autocannon';

/** wrk when installed (a separate C process), else autocannon in this process; BENCH_LOAD overrides. */
export function pickGenerator(): Generator {
  const forced = process.env.BENCH_LOAD;
  if (forced === 'wrk' || forced === 'autocannon') return forced;
  return findWrk() === undefined ? 'autocannon' : 'wrk';
}

function findWrk(): string | undefined {
  return ['/usr/bin/wrk', '/usr/local/bin/wrk'].find((path) => existsSync(path));
}

export function runLoad(resources: BenchResources, generator: Generator, spec: LoadSpec): Promise<LoadResult> {
  return generator === 'wrk' ? runWrk(resources, spec) : runAutocannon(spec);
}

async function runWrk(resources: BenchResources, spec: LoadSpec): Promise<LoadResult> {
  const args = ['-t1', `-c${spec.connections}`, `-d${spec.seconds}s`, '--latency', '--timeout', '10s'];
  for (const [name, value] of Object.entries(spec.headers)) args.push('-H', `${name}: ${value}`);
  args.push(spec.url);
  const child = resources.spawn(...onCores(spec.cores, findWrk() ?? 'wrk', args));
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`wrk exited with ${code}:\n${out}`);
  return parseWrk(out);
}

/** Parses wrk's `--latency` report. */
export function parseWrk(out: string): LoadResult {
  const total = /(\d+) requests in ([\d.]+)(\w+)/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const latency = /^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)/m.exec(out);
  const p50 = /^\s+50%\s+(\S+)/m.exec(out);
  const p99 = /^\s+99%\s+(\S+)/m.exec(out);
  if (total === null || rps === null || latency === null || p50 === null || p99 === null) {
    throw new Error(`cannot read wrk's report:\n${out}`);
  }
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors =
    Number(non2xx?.[1] ?? 0) + (socketErrors === null ? 0 : socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0));
  return {
    requests: Number(total[1]),
    seconds: toMs(`${total[2]}${total[3]}`) / 1000,
    rps: Number(rps[1]),
    p50: toMs(p50[1]!),
    p99: toMs(p99[1]!),
    max: toMs(latency[3]!),
    errors,
  };
}

/** wrk's durations: `812.00us`, `1.23ms`, `2.01s`, `1.00m`. */
function toMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (match === null) throw new Error(`unexpected wrk duration ${text}`);
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 'ms' ? value : match[2] === 's' ? value * 1000 : value * 60_000;
}

async function runAutocannon(spec: LoadSpec): Promise<LoadResult> {
  const result = await autocannon({
    url: spec.url,
    connections: spec.connections,
    duration: spec.seconds,
    headers: { ...spec.headers },
  });
  return {
    requests: result.requests.total,
    seconds: result.duration,
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    errors: result.non2xx + result.errors + result.timeouts,
  };
}
