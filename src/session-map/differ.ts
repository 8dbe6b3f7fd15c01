import { checkRow, forEachLine, identityList, isRoutableLine, routableLine, SkipCounter } from './rows.js';
import type { MapChanges, MapRead, MapRouting } from './store.js';

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

/** Most changes read on their own (readChanges) kept to spell out the map for the next whole read. */
const MAX_EDITS = 1024;

/** Characters compared per step while looking for the first difference. */
const COMPARE_CHUNK = 8192;

/**
 * Most places where the two reads are lined up again after a difference;
 * past that, the rest of both is compared key by key (still correct, slower).
 */
const MAX_ALIGN_STEPS = 64;

interface Previous {
  readonly format: string;
  /**
   * The raw rows of the last whole read, as the map is now once `edits` are
   * made; undefined when that cannot be told (the next whole read rebuilds).
   */
  readonly rows: string | undefined;
  readonly sessions: number;
  /** Invalid rows in the map now, by reason (without the format's own skips). */
  readonly rowSkips: SkipCounter;
  /** Changes read since the whole read (readChanges), oldest first. */
  readonly edits: readonly MapChanges[];
}

/** What a differ remembers, in a form that can be sent to another thread. */
export interface DifferState {
  readonly format: string;
  readonly rows: string | undefined;
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
    if (state !== undefined) this.previous = { ...state, rowSkips: new SkipCounter(state.rowSkips), edits: [] };
  }

  /** The last read, for a differ on another thread to carry on from. */
  state(): DifferState | undefined {
    const prev = this.previous;
    if (prev === undefined) return undefined;
    return { format: prev.format, rows: currentRows(prev), sessions: prev.sessions, rowSkips: [...prev.rowSkips.byReason] };
  }

  /** The update that takes the table from the previous read to `read`; `full` forces a rebuild. */
  next(read: MapRead, full = false): MapUpdate {
    const prev = this.previous;
    const rows = prev === undefined ? undefined : currentRows(prev);
    if (full || prev === undefined || rows === undefined || !read.uniqueKeys || prev.format !== read.format) return this.rebuild(read);
    const { routing } = read;
    if (rows === read.rows) {
      // Keep the new read's text: the store's ledger holds that one, so the two share it.
      this.previous = { ...prev, rows: read.rows, edits: [] };
      return { kind: 'same', format: read.format, routing, sessions: prev.sessions, skipped: total(prev.rowSkips, read) };
    }
    const { removed, inserted } = align(rows, read.rows);
    return this.change(prev, read, removed, inserted, read.rows) ?? this.rebuild(read);
  }

  /**
   * The update for changes a store read without reading the whole map
   * (MapStore.readChanges), or undefined when they need a whole read instead
   * (no earlier read of that format, or too many to send as a diff).
   */
  changes(changes: MapChanges): MapUpdate | undefined {
    const prev = this.previous;
    if (prev === undefined || prev.format !== changes.format) return undefined;
    const read = { format: changes.format, routing: changes.routing, skipped: new Map<string, number>() };
    return this.change(prev, read, changes.removed, changes.inserted, undefined, changes);
  }

  /**
   * The update from `removed` rows to `inserted` ones, remembered as the new
   * previous state: `rows` is the whole read it comes from, or undefined for
   * changes read on their own (`edit`). Undefined when it must be a rebuild.
   */
  private change(
    prev: Previous,
    read: Pick<MapRead, 'format' | 'routing' | 'skipped'>,
    removed: string,
    inserted: string,
    rows: string | undefined,
    edit?: MapChanges,
  ): MapUpdate | undefined {
    const { routing } = read;
    const before = routable(routing, removed);
    const after = routable(routing, inserted);
    if (after.repeated) return undefined;
    const upserts: string[] = [];
    const gone: string[] = [];
    for (const [key, target] of after.entries) {
      if (before.entries.get(key) !== target) upserts.push(routableLine(key, target));
    }
    for (const key of before.entries.keys()) {
      if (!after.entries.has(key)) gone.push(key);
    }
    if (upserts.length + gone.length > MAX_DIFF_ENTRIES) return undefined;

    const rowSkips = new SkipCounter(prev.rowSkips.byReason);
    for (const [reason, n] of before.skips.byReason) rowSkips.add(reason, -n);
    for (const [reason, n] of after.skips.byReason) rowSkips.add(reason, n);
    const sessions = prev.sessions - before.entries.size + after.entries.size;
    if (edit === undefined) this.previous = { format: read.format, rows, sessions, rowSkips, edits: [] };
    else {
      // Past MAX_EDITS the map as it is now is no longer worth spelling out: the next whole read rebuilds.
      const edits = prev.rows === undefined || prev.edits.length >= MAX_EDITS ? [] : [...prev.edits, edit];
      this.previous = { format: read.format, rows: edits.length === 0 ? undefined : prev.rows, sessions, rowSkips, edits };
    }
    if (upserts.length === 0 && gone.length === 0) return { kind: 'same', format: read.format, routing, sessions, skipped: total(rowSkips, read) };
    return { kind: 'diff', upserts: upserts.join(''), removals: identityList(gone), format: read.format, routing, sessions, skipped: total(rowSkips, read) };
  }

  private rebuild(read: MapRead): MapUpdate {
    const { rows, sessions, skips } = read.uniqueKeys ? routableRows(read.routing, read.rows) : lastRowsWin(read.routing, read.rows);
    this.previous = { format: read.format, rows: read.rows, sessions, rowSkips: skips, edits: [] };
    return { kind: 'full', rows, format: read.format, routing: read.routing, sessions, skipped: total(skips, read) };
  }
}

/**
 * The raw rows of the map as they are now: the last whole read with the
 * changes read since made, as a whole read would return them (rows in rowid
 * order: a changed row is deleted where it was, and the rows read as changes
 * all come after every earlier row). Undefined when an edit does not fit
 * (then the next whole read is a rebuild).
 */
function currentRows(prev: Previous): string | undefined {
  if (prev.rows === undefined || prev.edits.length === 0) return prev.rows;
  const base = prev.rows;
  const appended: string[] = [];
  /** Offsets of base rows deleted since. */
  const cut = new Set<number>();
  for (const edit of prev.edits) {
    for (const line of linesWithLf(edit.removed)) {
      const i = appended.indexOf(line);
      if (i >= 0) {
        appended.splice(i, 1);
        continue;
      }
      const at = rowStart(base, line, cut);
      if (at < 0) return undefined;
      cut.add(at);
    }
    appended.push(...linesWithLf(edit.inserted));
  }
  const pieces: string[] = [];
  let from = 0;
  for (const at of [...cut].sort((a, b) => a - b)) {
    pieces.push(base.slice(from, at));
    from = rowEnd(base, at);
  }
  pieces.push(base.slice(from), ...appended);
  return pieces.join('');
}

/** Offset of a row of `rows` that is exactly `line` (with its LF) and not among `cut`, or -1. */
function rowStart(rows: string, line: string, cut: ReadonlySet<number>): number {
  if (rows.startsWith(line) && !cut.has(0)) return 0;
  const needle = `\n${line}`;
  for (let at = rows.indexOf(needle); at >= 0; at = rows.indexOf(needle, at + 1)) if (!cut.has(at + 1)) return at + 1;
  return -1;
}

/** Each row of a list of raw rows, with its LF. */
function linesWithLf(rows: string): string[] {
  return rows === '' ? [] : rows.slice(0, -1).split('\n').map((l) => `${l}\n`);
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

function total(rowSkips: SkipCounter, read: Pick<MapRead, 'skipped'>): [string, number][] {
  const all = new SkipCounter(rowSkips.byReason);
  for (const [reason, n] of read.skipped) all.add(reason, n);
  return [...all.byReason];
}
