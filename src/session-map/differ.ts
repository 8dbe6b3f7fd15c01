import { checkRow, forEachLine, identityList, isRoutableLine, routableLine, SkipCounter } from './rows.js';
import type { MapRead, MapRouting } from './store.js';

/** What the route table must do to match the latest read (rows in the form of rows.ts). */
export type MapUpdate = UpdateOutline &
  (
    | /** Rebuild: `rows` holds every routable row (later rows win). */ { readonly kind: 'full'; readonly rows: string }
    | /** Change in place: set the routable `upserts`, drop the identities in `removals` (one per line). */ {
        readonly kind: 'diff';
        readonly upserts: string;
        readonly removals: string;
      }
    | /** The routes are as before. */ { readonly kind: 'same' }
  );

/** What every update says of the read it comes from. */
interface UpdateOutline {
  readonly format: string;
  /** What the rows route by (and so their form, see rows.ts). */
  readonly routing: MapRouting;
  /** Routable entries (sessions or entry points). */
  readonly sessions: number;
  readonly skipped: [string, number][];
}

/**
 * Largest change set sent as a diff. The main thread applies a diff in one
 * synchronous step, so its size bounds that step; a bigger change is sent as
 * a full rebuild, which the main thread spreads over short slices.
 */
export const MAX_DIFF_ENTRIES = 2000;

/** Characters compared per step while looking for the first difference. */
const COMPARE_CHUNK = 8192;

/**
 * Most places where the two reads are lined up again after a difference;
 * past that, the rest of both is compared key by key (still correct, slower).
 */
const MAX_ALIGN_STEPS = 64;

interface Previous {
  readonly format: string;
  readonly rows: string;
  readonly sessions: number;
  /** Invalid rows in `rows`, by reason (without the format's own skips). */
  readonly rowSkips: SkipCounter;
}

/** What a differ remembers, in a form that can be sent to another thread. */
export interface DifferState {
  readonly format: string;
  readonly rows: string;
  readonly sessions: number;
  readonly rowSkips: [string, number][];
}

/**
 * Turns successive reads of one map into updates for the route table.
 *
 * Galaxy appends a row for each new session, and moves a session's row to the
 * end when it is registered again (DELETE then INSERT), so two reads are
 * mostly the same text. The reads are lined up row by row (long identical
 * stretches are compared as whole strings, which is fast) and only the rows
 * that differ are parsed: the update is the handful of keys that changed.
 * This needs keys that cannot repeat (a key could otherwise occur both in an
 * identical stretch and among the changed rows); other maps get a full
 * rebuild every time.
 */
export class MapDiffer {
  private previous: Previous | undefined;

  /** Starts from a state another differ handed over (see `state`), or from nothing. */
  constructor(state?: DifferState) {
    if (state !== undefined) this.previous = { ...state, rowSkips: new SkipCounter(state.rowSkips) };
  }

  /** The last read, for a differ on another thread to carry on from. */
  state(): DifferState | undefined {
    const prev = this.previous;
    return prev === undefined ? undefined : { ...prev, rowSkips: [...prev.rowSkips.byReason] };
  }

  /** The update that takes the table from the previous read to `read`; `full` forces a rebuild. */
  next(read: MapRead, full = false): MapUpdate {
    const prev = this.previous;
    if (full || prev === undefined || !read.uniqueKeys || prev.format !== read.format) return this.rebuild(read);
    const { routing } = read;
    if (prev.rows === read.rows) return { kind: 'same', format: read.format, routing, sessions: prev.sessions, skipped: total(prev.rowSkips, read) };

    const { removed, inserted } = align(prev.rows, read.rows);
    const before = routable(routing, removed);
    const after = routable(routing, inserted);
    if (after.repeated) return this.rebuild(read);
    const upserts: string[] = [];
    const gone: string[] = [];
    for (const [key, target] of after.entries) {
      if (before.entries.get(key) !== target) upserts.push(routableLine(key, target));
    }
    for (const key of before.entries.keys()) {
      if (!after.entries.has(key)) gone.push(key);
    }
    if (upserts.length + gone.length > MAX_DIFF_ENTRIES) return this.rebuild(read);

    const rowSkips = new SkipCounter(prev.rowSkips.byReason);
    for (const [reason, n] of before.skips.byReason) rowSkips.add(reason, -n);
    for (const [reason, n] of after.skips.byReason) rowSkips.add(reason, n);
    const sessions = prev.sessions - before.entries.size + after.entries.size;
    this.previous = { format: read.format, rows: read.rows, sessions, rowSkips };
    if (upserts.length === 0 && gone.length === 0) return { kind: 'same', format: read.format, routing, sessions, skipped: total(rowSkips, read) };
    return { kind: 'diff', upserts: upserts.join(''), removals: identityList(gone), format: read.format, routing, sessions, skipped: total(rowSkips, read) };
  }

  private rebuild(read: MapRead): MapUpdate {
    const { rows, sessions, skips } = read.uniqueKeys ? routableRows(read.routing, read.rows) : lastRowsWin(read.routing, read.rows);
    this.previous = { format: read.format, rows: read.rows, sessions, rowSkips: skips };
    return { kind: 'full', rows, format: read.format, routing: read.routing, sessions, skipped: total(skips, read) };
  }
}

/** The routable rows of a read whose identities may repeat: one per identity, the last one's value. */
function lastRowsWin(routing: MapRouting, raw: string): { rows: string; sessions: number; skips: SkipCounter } {
  const { entries, skips } = routable(routing, raw);
  const rows: string[] = [];
  for (const [key, target] of entries) rows.push(routableLine(key, target));
  return { rows: rows.join(''), sessions: entries.size, skips };
}

/**
 * The routable rows of a read whose identities cannot repeat: no map is
 * needed to let later rows win, so the read is copied in runs, skipping the
 * invalid rows and rewriting the rows whose routable form differs. When no
 * row needs either (the usual session map), the result is the read itself:
 * no copy, and no 100,000-entry map made and dropped at every rebuild.
 */
function routableRows(routing: MapRouting, raw: string): { rows: string; sessions: number; skips: SkipCounter } {
  const skips = new SkipCounter();
  const pieces: string[] = [];
  let sessions = 0;
  // Start of the raw text, already in routable form, not yet copied into `pieces`.
  let runFrom = 0;
  let at = 0;
  while (at < raw.length) {
    let end = raw.indexOf('\n', at);
    if (end < 0) end = raw.length;
    const line = raw.slice(at, end);
    const checked = checkRow(routing, line);
    if ('problem' in checked) {
      skips.add(checked.problem);
      pieces.push(raw.slice(runFrom, at));
      runFrom = end + 1;
    } else {
      sessions++;
      if (!isRoutableLine(line, checked.id, checked.value)) {
        pieces.push(raw.slice(runFrom, at), routableLine(checked.id, checked.value));
        runFrom = end + 1;
      }
    }
    at = end + 1;
  }
  const rows = pieces.length === 0 ? raw : pieces.join('') + raw.slice(Math.min(runFrom, raw.length));
  // Every row ends with a LF, as in the other form.
  return { rows: rows === '' || rows.endsWith('\n') ? rows : `${rows}\n`, sessions, skips };
}


/** The routable entries (identity → routable value, see rows.ts) of raw `rows`. */
function routable(routing: MapRouting, rows: string): { entries: Map<string, string>; skips: SkipCounter; repeated: boolean } {
  const entries = new Map<string, string>();
  const skips = new SkipCounter();
  let repeated = false;
  forEachLine(rows, 0, Infinity, (line) => {
    const checked = checkRow(routing, line);
    if ('problem' in checked) {
      skips.add(checked.problem);
      return;
    }
    if (entries.has(checked.id)) repeated = true;
    entries.set(checked.id, checked.value);
  });
  return { entries, skips, repeated };
}

/**
 * Lines up two reads and returns the rows only the first has (`removed`) and
 * the rows only the second has (`inserted`). Where they differ, it skips a
 * row of the first, of the second, or of both, whichever lines up the longest
 * identical stretch after it: that finds appended, deleted, changed and moved
 * rows. Any lining-up gives a correct update, because rows in identical
 * stretches are the same key with the same target on both sides.
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
export function commonRows(a: string, ai: number, b: string, bi: number): number {
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

function total(rowSkips: SkipCounter, read: MapRead): [string, number][] {
  const all = new SkipCounter(rowSkips.byReason);
  for (const [reason, n] of read.skipped) all.add(reason, n);
  return [...all.byReason];
}
