import type { EntryPointRow } from '../routing/entry-point-table.js';
import { MAX_DIFF_ENTRIES, type MapAnswer, type MapRead, type MapRouting } from './store.js';
import { tcpPort } from '../tcp-port.js';

/**
 * The one form every session map format is turned into: one line per entry,
 * `key TAB host TAB port LF`, fields as text. A plain string is cheap to build,
 * to compare with the previous read, and to hand from the reader thread to the
 * main thread, where parsing it row by row can be split into short slices.
 */

/**
 * Stands in for a value that cannot be carried in a row: text holding a tab or
 * a newline, or a value that is not text. Every check below rejects it.
 */
const UNUSABLE = '\u0001';
const SEPARATORS = /[\t\n]/;
// eslint-disable-next-line no-control-regex -- matching control characters is the point: they are refused in keys and hosts
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
function rowProblem(key: string, host: string, port: string): string | undefined {
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
  if (tcpPort(port) === undefined) return 'port out of range';
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

/**
 * One raw row (without its LF) of a map that routes by `routing`: its
 * identity and its routable value (the rest of the routable row), or the
 * reason it is skipped. The routable row is `identity TAB value`.
 */
export function checkRow(routing: MapRouting, line: string): { id: string; value: string } | { problem: string } {
  if (routing === 'entry-point') return checkEntryPointRow(line);
  const tab1 = line.indexOf('\t');
  const tab2 = tab1 < 0 ? -1 : line.indexOf('\t', tab1 + 1);
  if (tab2 < 0) return { problem: 'malformed key' }; // cannot happen for rows made by rowLine
  const key = line.slice(0, tab1);
  const host = line.slice(tab1 + 1, tab2);
  const port = line.slice(tab2 + 1);
  const problem = rowProblem(key, host, port);
  return problem === undefined ? { id: key, value: `${host}\t${port}` } : { problem };
}

/** A routable row, the form updates carry: `id TAB value LF`. */
export function routableLine(id: string, value: string): string {
  return `${id}\t${value}\n`;
}

/** True when `line` (without its LF) is `id TAB value` already, checked without building that string. */
export function isRoutableLine(line: string, id: string, value: string): boolean {
  return line.length === id.length + 1 + value.length && line.charCodeAt(id.length) === 9 && line.startsWith(id) && line.endsWith(value);
}

/** A list of identities (an update's removals), one per line. */
export function identityList(ids: Iterable<string>): string {
  let list = '';
  for (const id of ids) list += `${id}\n`;
  return list;
}

/** The lines of a list of rows or identities (each ending in LF), without their LF. */
export function linesOf(list: string): string[] {
  return list === '' ? [] : list.slice(0, -1).split('\n');
}

/**
 * Calls `fn` with each of up to `maxLines` lines of `rows` (without the LF)
 * from offset `from`; returns the offset after the last line handled.
 */
export function forEachLine(rows: string, from: number, maxLines: number, fn: (line: string) => void): number {
  let at = from;
  for (let n = 0; n < maxLines && at < rows.length; n++) {
    let end = rows.indexOf('\n', at);
    if (end < 0) end = rows.length;
    fn(rows.slice(at, end));
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

/*
 * Galaxy's Interactive Tools map (`gxitproxy`) in the row form the reader,
 * the producer and the reloader share. Two forms:
 *
 * - a **raw** row, as a store reads it: `key TAB key_type TAB token TAB host
 *   TAB port TAB info LF` (info last, so a tab inside it cannot shift the
 *   other fields);
 * - a **routable** row, checked and normalised: `key TAB key_type TAB token
 *   TAB host TAB port TAB flags LF`, flags being `1` or `0`
 *   (requires_path_in_url) followed by the requires_path_in_header_named
 *   header name, if any.
 *
 * The identity of a row is `key TAB key_type` (Galaxy's primary key).
 *
 * In raw rows Galaxy's key type may stand as KEY_TYPE_MARK, and an empty info
 * also stands for Galaxy's default info (both mean: no path in the URL, no
 * header), so that a store can leave out what nearly every row repeats.
 */

/** The key type Galaxy writes for every entry point (`entry_point.__class__.__name__.lower()`). */
export const DEFAULT_KEY_TYPE = 'interactivetoolentrypoint';
/** Stands for DEFAULT_KEY_TYPE in a raw row (a control character, which no real key type holds). */
export const KEY_TYPE_MARK = '\u0002';
/** Galaxy's `info` for an entry point with neither flag (Python's json.dumps, byte for byte). */
export const GALAXY_DEFAULT_INFO = '{"requires_path_in_url": false, "requires_path_in_header_named": null}';

// RFC 9110 token: what a header name may be.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Skip reasons for entry-point rows (host and port reasons come from the shared target check). */
export const ENTRY_POINT_SKIP = Object.freeze({
  missingKey: 'missing key',
  malformedKey: 'malformed key',
  missingToken: 'missing token',
  malformedToken: 'malformed token',
  infoNotJson: 'info is not valid JSON',
  infoUnusable: 'info has unusable values',
});

/**
 * Checks one raw row (without its LF). Returns the identity and the routable
 * value (`token TAB host TAB port TAB flags`), or the reason it is skipped.
 * Host and port are checked as for every map format.
 */
export function checkEntryPointRow(line: string): { id: string; value: string } | { problem: string } {
  const t1 = line.indexOf('\t');
  const t2 = t1 < 0 ? -1 : line.indexOf('\t', t1 + 1);
  const t3 = t2 < 0 ? -1 : line.indexOf('\t', t2 + 1);
  const t4 = t3 < 0 ? -1 : line.indexOf('\t', t3 + 1);
  const t5 = t4 < 0 ? -1 : line.indexOf('\t', t4 + 1);
  if (t5 < 0) return { problem: ENTRY_POINT_SKIP.malformedKey }; // cannot happen for rows the store made
  const key = line.slice(0, t1);
  const keyTypeField = line.slice(t1 + 1, t2);
  const keyType = keyTypeField === KEY_TYPE_MARK ? DEFAULT_KEY_TYPE : keyTypeField;
  const token = line.slice(t2 + 1, t3);
  const host = line.slice(t3 + 1, t4);
  const port = line.slice(t4 + 1, t5);
  if (key === '') return { problem: ENTRY_POINT_SKIP.missingKey };
  if (CONTROL.test(key) || CONTROL.test(keyType)) return { problem: ENTRY_POINT_SKIP.malformedKey };
  if (token === '') return { problem: ENTRY_POINT_SKIP.missingToken };
  if (CONTROL.test(token)) return { problem: ENTRY_POINT_SKIP.malformedToken };
  const target = targetProblem(host, port);
  if (target !== undefined) return { problem: target };
  const flags = infoFlags(line.slice(t5 + 1));
  if (flags === ENTRY_POINT_SKIP.infoNotJson || flags === ENTRY_POINT_SKIP.infoUnusable) return { problem: flags };
  return { id: `${key}\t${keyType}`, value: `${token}\t${host}\t${port}\t${flags}` };
}

/**
 * The flags field of a routable row from Galaxy's `info` column: `1`/`0` for
 * requires_path_in_url, then the header name of requires_path_in_header_named.
 * NULL info (Galaxy before 23.1) means neither. Returns a skip reason when the
 * text is not JSON or its values are not what Galaxy writes (a boolean or
 * null; a header name or null).
 */
export function infoFlags(info: string): string {
  if (info === '') return '0';
  let parsed: unknown;
  try {
    parsed = JSON.parse(info);
  } catch {
    return ENTRY_POINT_SKIP.infoNotJson;
  }
  if (parsed === null) return '0';
  if (typeof parsed !== 'object' || Array.isArray(parsed)) return ENTRY_POINT_SKIP.infoUnusable;
  const { requires_path_in_url: inUrl, requires_path_in_header_named: header } = parsed as Record<string, unknown>;
  if (inUrl !== undefined && inUrl !== null && typeof inUrl !== 'boolean') return ENTRY_POINT_SKIP.infoUnusable;
  let name = '';
  if (typeof header === 'string') {
    if (header !== '' && !HEADER_NAME.test(header)) return ENTRY_POINT_SKIP.infoUnusable;
    name = header;
  } else if (header !== undefined && header !== null && header !== false) {
    return ENTRY_POINT_SKIP.infoUnusable;
  }
  return `${inUrl === true ? '1' : '0'}${name}`;
}

/** One routable row line (with or without its LF) back to the row the entry-point table takes. */
export function parseRoutableEntryPoint(line: string): EntryPointRow {
  if (line.endsWith('\n')) line = line.slice(0, -1);
  const [key = '', keyType = '', token = '', host = '', port = '', flags = '0'] = line.split('\t');
  const header = flags.slice(1);
  return {
    key,
    keyType,
    token,
    host,
    port: Number(port),
    requiresPathInUrl: flags.charCodeAt(0) === 49 /* 1 */,
    requiresPathInHeaderNamed: header === '' ? undefined : header,
  };
}

/** The identity part (`key TAB key_type`, the key type maybe as KEY_TYPE_MARK) of a raw entry-point row. */
export function rawEntryPointIdentity(line: string): string {
  const t1 = line.indexOf('\t');
  const t2 = t1 < 0 ? -1 : line.indexOf('\t', t1 + 1);
  return t2 < 0 ? line : line.slice(0, t2);
}

/** An identity (`key TAB key_type`) as the table's removal pair. */
export function splitIdentity(id: string): readonly [string, string] {
  const tab = id.indexOf('\t');
  return tab < 0 ? [id, ''] : [id.slice(0, tab), id.slice(tab + 1)];
}

/** Characters compared per step while looking for the first difference. */
const COMPARE_CHUNK = 8192;

/**
 * Most places where two reads are lined up again after a difference; past
 * that, the rest of both counts as changed (still correct, a larger change).
 */
const MAX_ALIGN_STEPS = 64;

/**
 * Lines up two lists of raw rows whose identities cannot repeat and returns
 * the rows only the first has (`removed`) and the rows only the second has
 * (`inserted`). Where they differ, it skips a row of the first, of the
 * second, or of both, whichever lines up the longest identical stretch after
 * it: that finds appended, deleted, changed and moved rows. Long identical
 * stretches are compared as whole strings, which is fast. Any lining-up is
 * correct, because rows in identical stretches are the same identity with
 * the same value on both sides.
 */
export function align(a: string, b: string): { removed: string; inserted: string } {
  const removed: string[] = [];
  const inserted: string[] = [];
  let i = 0;
  let j = 0;
  for (let steps = 0; steps < MAX_ALIGN_STEPS; steps++) {
    const run = commonRows(a, i, b, j);
    i += run;
    j += run;
    if (i >= a.length || j >= b.length) break;
    const nextA = rowEnd(a, i);
    const nextB = rowEnd(b, j);
    const skipA = commonRows(a, nextA, b, j);
    const skipB = commonRows(a, i, b, nextB);
    const skipBoth = commonRows(a, nextA, b, nextB);
    if (skipBoth >= skipA && skipBoth >= skipB) {
      removed.push(a.slice(i, nextA));
      inserted.push(b.slice(j, nextB));
      i = nextA;
      j = nextB;
    } else if (skipA >= skipB) {
      removed.push(a.slice(i, nextA));
      i = nextA;
    } else {
      inserted.push(b.slice(j, nextB));
      j = nextB;
    }
  }
  removed.push(a.slice(i));
  inserted.push(b.slice(j));
  return { removed: removed.join(''), inserted: inserted.join('') };
}

/** Length of the identical whole rows at `a[ai...]` and `b[bi...]`. */
function commonRows(a: string, ai: number, b: string, bi: number): number {
  const n = Math.min(a.length - ai, b.length - bi);
  let k = 0;
  while (k < n) {
    const end = Math.min(k + COMPARE_CHUNK, n);
    if (a.slice(ai + k, ai + end) !== b.slice(bi + k, bi + end)) break;
    k = end;
  }
  while (k < n && a.charCodeAt(ai + k) === b.charCodeAt(bi + k)) k++;
  // Back to the end of the last row that is complete in both.
  return k === 0 ? 0 : a.lastIndexOf('\n', ai + k - 1) + 1 - ai;
}

/** Offset just after the row that starts at `at`. */
function rowEnd(rows: string, at: number): number {
  const end = rows.indexOf('\n', at);
  return end < 0 ? rows.length : end + 1;
}

/**
 * A whole read answered as the changes since `last`, the store's previous
 * answer (for a store that keeps no ledger: a JSON map, older Galaxy's
 * `gxproxy` table), by lining the two up (align). The whole read itself when
 * it is asked for, when there is no previous read of the same format, when
 * identities may repeat, or when more than MAX_DIFF_ENTRIES rows changed.
 */
export function changesSince(last: MapRead | undefined, read: MapRead, whole: boolean): MapAnswer {
  if (whole || last === undefined || last.format !== read.format || !last.uniqueKeys || !read.uniqueKeys) return read;
  const changes = align(last.rows, read.rows);
  if (countLines(changes.removed) + countLines(changes.inserted) > MAX_DIFF_ENTRIES) return read;
  return { kind: 'changes', format: read.format, routing: read.routing, ...changes, skipped: read.skipped };
}

/** Lines in `text` (newlines; every row line ends with one). */
export function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
