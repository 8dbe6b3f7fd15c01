import { randomBytes } from 'node:crypto';
import type { Generator } from './load.js';
import type { BenchResources } from './processes.js';
import type { Pinning, SteadyRunner } from './steady.js';

/** The cookie Galaxy sets and both proxies route by. */
export const COOKIE = 'galaxysession';

/** A path like the ones Jupyter's page requests through the proxy. */
export const REQUEST_PATH = '/galaxy/gie_proxy/jupyter/ipython/api/contents?type=directory&_=1700000000000';

/** What every phase of the benchmark shares. */
export interface BenchContext {
  readonly resources: BenchResources;
  readonly generator: Generator;
  /** nginx binary, or undefined: no nginx reference and a Node fast backend. */
  readonly nginx: string | undefined;
  /** Interleaved rounds per compared figure. */
  readonly rounds: number;
  /** Seconds of load per round. */
  readonly seconds: number;
  /** Which cores the servers and the load side run on. */
  readonly pinning: Pinning;
  /** Re-runs rounds during which the machine was not steady. */
  readonly steady: SteadyRunner;
  /** Concurrent connections of the load generator. */
  readonly connections: number;
  /** Sessions in the large map. */
  readonly bigSessions: number;
  readonly cpuProfDir: string | undefined;
  /** Progress lines go here (stderr), the summary to stdout. */
  progress(line: string): void;
}

/** A fresh session cookie value shaped like Galaxy's (hex). */
export function newSessionKey(): string {
  return randomBytes(32).toString('hex');
}

/**
 * The Cookie header a browser sends to the proxy: Galaxy's session among the
 * other cookies of the site (analytics, Jupyter's XSRF token), so cookie
 * parsing costs what it costs in production.
 */
export function cookieHeader(key: string): string {
  return `_ga=GA1.1.1480270943.1700000000; ${COOKIE}=${key}; _xsrf=2|5c3a1e2f|9f7b2d0c4e6a8b1d3f5e7a9c0b2d4f6e|1700000000; _gid=GA1.1.99887766.1700000000`;
}

export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The value at quantile `q` (0…1) of `values`, interpolated. */
export function quantile(values: readonly number[], q: number): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  return sorted[lo]! + (sorted[Math.min(lo + 1, sorted.length - 1)]! - sorted[lo]!) * (at - lo);
}

/** Median, interquartile range and range of a set of per-round figures. */
export interface Spread {
  readonly median: number;
  readonly q1: number;
  readonly q3: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

export function spread(values: readonly number[]): Spread {
  const finite = values.filter((v) => Number.isFinite(v));
  return {
    median: median(finite),
    q1: quantile(finite, 0.25),
    q3: quantile(finite, 0.75),
    min: finite.length === 0 ? Number.NaN : Math.min(...finite),
    max: finite.length === 0 ? Number.NaN : Math.max(...finite),
    n: finite.length,
  };
}

/** `median (IQR q1–q3, range min–max)`. */
export function fmtSpread(s: Spread, digits = 2, unit = ''): string {
  return `${fmt(s.median, digits)}${unit} (IQR ${fmt(s.q1, digits)}–${fmt(s.q3, digits)}, range ${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

/** A number with `digits` decimals, or `n/a`. */
export function fmt(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

/** Prints rows as a Markdown table (readable in a terminal and pasteable into the README). */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}
