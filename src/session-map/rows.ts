import type { Target } from '../routing/route-table.js';
import type { MapRead } from './store.js';

/**
 * The one form every session map format is turned into: one line per entry,
 * `key TAB host TAB port LF`, fields as text. A plain string is cheap to build,
 * to compare with the previous read, and to hand from the reader thread to the
 * main thread, where parsing it row by row can be split into short slices.
 */

/** One complete, validated read: cookie value → container. */
export interface SessionMapSnapshot {
  readonly routes: Map<string, Target>;
  /** Human-readable description of what was read, e.g. `sqlite gxproxy2`. */
  readonly format: string;
  /** Entries that could not be used, by reason; empty when all loaded. */
  readonly skipped: ReadonlyMap<string, number>;
}

/**
 * Stands in for a value that cannot be carried in a row: text holding a tab or
 * a newline, or a value that is not text. Every check below rejects it.
 */
const UNUSABLE = '\u0001';
const SEPARATORS = /[\t\n]/;
const CONTROL = /[\u0000-\u001f\u007f]/;
const HOSTNAME = /^[A-Za-z0-9._:[\]-]+$/;
const DIGITS = /^\d+$/;

function field(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value !== 'string') return UNUSABLE;
  return SEPARATORS.test(value) ? UNUSABLE : value;
}

function portField(value: unknown): string {
  // Anything numeric but not a whole, non-negative number is out of range.
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? String(value) : '0';
  if (typeof value === 'bigint') return value >= 0n ? String(value) : '0';
  return field(value);
}

/** One map entry as a row line; the values are checked later, by `rowProblem`. */
export function rowLine(key: unknown, host: unknown, port: unknown): string {
  return `${field(key)}\t${field(host)}\t${portField(port)}\n`;
}

/**
 * Collects rows of a format in which a key may occur more than once (the
 * older ones): the last row for a key wins, in the place of its first. Rows
 * whose key is unusable are kept as they are, to be counted as skipped.
 */
export class LastRowWins {
  private readonly byKey = new Map<string, string>();
  private readonly unusable: string[] = [];

  add(key: unknown, host: unknown, port: unknown): void {
    const line = rowLine(key, host, port);
    const keyField = line.slice(0, line.indexOf('\t'));
    if (keyField === '' || CONTROL.test(keyField)) this.unusable.push(line);
    else this.byKey.set(keyField, line);
  }

  /** The rows, each usable key once. */
  rows(): string {
    return [...this.byKey.values(), ...this.unusable].join('');
  }
}

/**
 * Splits the `host:port` of the older formats at its last colon
 * (`[::1]:8080` gives `[::1]` and `8080`).
 */
export function splitHostPort(value: unknown): { host: unknown; port: unknown } {
  if (typeof value !== 'string') return { host: undefined, port: undefined };
  const colon = value.lastIndexOf(':');
  if (colon < 0) return { host: value, port: undefined };
  return { host: value.slice(0, colon), port: value.slice(colon + 1) };
}

/**
 * Why an entry cannot be routed, or undefined when it can. Shared by every
 * format so that they skip the same things for the same reasons.
 */
export function rowProblem(key: string, host: string, port: string): string | undefined {
  if (key === '') return 'missing key';
  if (CONTROL.test(key)) return 'malformed key';
  return targetProblem(host, port);
}

/** Why a container address, as any format holds it (text, number, null), cannot be used. */
export function invalidTargetReason(host: unknown, port: unknown): string | undefined {
  return targetProblem(field(host), portField(port));
}

function targetProblem(host: string, port: string): string | undefined {
  if (host === '') return 'missing host';
  if (!HOSTNAME.test(host)) return 'malformed host';
  if (!DIGITS.test(port)) return 'non-numeric port';
  const n = Number(port);
  if (n < 1 || n > 65535) return 'port out of range';
  return undefined;
}

/**
 * Calls `fn` for up to `maxRows` rows of `rows` starting at offset `from`;
 * returns the offset after the last row handled (`rows.length` when done).
 */
export function forEachRow(
  rows: string,
  from: number,
  maxRows: number,
  fn: (key: string, host: string, port: string) => void,
): number {
  let at = from;
  for (let n = 0; n < maxRows && at < rows.length; n++) {
    let end = rows.indexOf('\n', at);
    if (end < 0) end = rows.length;
    const tab1 = rows.indexOf('\t', at);
    const tab2 = tab1 < 0 ? -1 : rows.indexOf('\t', tab1 + 1);
    if (tab2 < 0 || tab2 > end) fn(UNUSABLE, '', ''); // cannot happen for rows made by rowLine
    else fn(rows.slice(at, tab1), rows.slice(tab1 + 1, tab2), rows.slice(tab2 + 1, end));
    at = end + 1;
  }
  return Math.min(at, rows.length);
}

/** Counts skipped entries by reason, for the one warning a reload logs. */
export class SkipCounter {
  readonly byReason = new Map<string, number>();

  constructor(initial: Iterable<[string, number]> = []) {
    for (const [reason, n] of initial) this.add(reason, n);
  }

  add(reason: string, n = 1): void {
    const total = (this.byReason.get(reason) ?? 0) + n;
    if (total === 0) this.byReason.delete(reason);
    else this.byReason.set(reason, total);
  }

  get total(): number {
    let sum = 0;
    for (const n of this.byReason.values()) sum += n;
    return sum;
  }
}

/** Validates a whole read at once (for `--check` and small uses): later rows win. */
export function toSnapshot(read: MapRead): SessionMapSnapshot {
  const routes = new Map<string, Target>();
  const skipped = new SkipCounter(read.skipped);
  forEachRow(read.rows, 0, Infinity, (key, host, port) => {
    const problem = rowProblem(key, host, port);
    if (problem === undefined) routes.set(key, { host, port: Number(port) });
    else skipped.add(problem);
  });
  return { routes, format: read.format, skipped: skipped.byReason };
}
