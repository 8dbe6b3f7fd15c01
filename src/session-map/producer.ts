import { checkRow, forEachLine, identityList, isRoutableLine, routableLine, SkipCounter } from './rows.js';
import { MAX_DIFF_ENTRIES, type MapAnswer, type MapChanges, type MapRead, type MapRouting, type MapStore, type SessionMapFailure } from './store.js';

/** What the route table must do to match the latest answer (rows in the form of rows.ts). */
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

/** What every update says of the map it comes from. */
interface UpdateOutline {
  readonly format: string;
  /** What the rows route by (and so their form, see rows.ts). */
  readonly routing: MapRouting;
  /** Routable entries (sessions or entry points). */
  readonly sessions: number;
  readonly skipped: [string, number][];
}

/** What the producer keeps of the map: counts, never its rows (the store keeps what it last answered). */
interface Counts {
  readonly format: string;
  readonly sessions: number;
  /** Invalid rows in the map now, by reason (without the format's own skips). */
  readonly rowSkips: SkipCounter;
}

/**
 * Turns a store's answers into updates for the route table: a whole answer
 * into a rebuild, an answer of changes into a diff of routable rows. It keeps
 * only the counts of the map (sessions, skips by reason); undefined from
 * `next` means the changes cannot be a diff (no earlier whole answer of that
 * format, a repeated identity, more than MAX_DIFF_ENTRIES), and the caller
 * asks the store for the whole map.
 */
export class UpdateMaker {
  private counts: Counts | undefined;

  next(answer: MapAnswer): MapUpdate | undefined {
    return answer.kind === 'whole' ? this.rebuild(answer) : this.change(answer);
  }

  private rebuild(read: MapRead): MapUpdate {
    const { rows, sessions, skips } = read.uniqueKeys ? routableRows(read.routing, read.rows) : lastRowsWin(read.routing, read.rows);
    this.counts = { format: read.format, sessions, rowSkips: skips };
    return { kind: 'full', rows, format: read.format, routing: read.routing, sessions, skipped: total(skips, read.skipped) };
  }

  private change(changes: MapChanges): MapUpdate | undefined {
    const prev = this.counts;
    if (prev === undefined || prev.format !== changes.format) return undefined;
    const { routing, format } = changes;
    const before = routable(routing, changes.removed);
    const after = routable(routing, changes.inserted);
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
    this.counts = { format, sessions, rowSkips };
    const skipped = total(rowSkips, changes.skipped);
    if (upserts.length === 0 && gone.length === 0) return { kind: 'same', format, routing, sessions, skipped };
    return { kind: 'diff', upserts: upserts.join(''), removals: identityList(gone), format, routing, sessions, skipped };
  }
}

/**
 * One step of keeping the route table in line with the map, wherever it runs
 * (the reader thread, or inline for `--check`, tests and a failed thread):
 * ask the store whether the map may have changed, read it if so, and turn
 * its answer into an update.
 */
export class UpdateProducer {
  private readonly updates = new UpdateMaker();
  /** Store version of the last successful read; a read happens only when it moves. */
  private readVersion: string | undefined;
  constructor(private readonly store: MapStore) {}

  /**
   * The update for the route table, or `undefined` when the store says
   * nothing changed since the last read (`full` reads the whole map and
   * rebuilds anyway). Rejects with SessionMapError.
   */
  async produce(full: boolean): Promise<MapUpdate | undefined> {
    // Version first: a change after this point only causes one more read.
    const version = await this.store.version();
    if (!full && version !== undefined && version === this.readVersion) return undefined;
    this.readVersion = undefined;
    const update = (await this.answer(full)) ?? (await this.answer(true));
    this.readVersion = version;
    return update!;
  }

  close(): void {
    this.store.close();
  }

  private async answer(whole: boolean): Promise<MapUpdate | undefined> {
    return this.updates.next(await this.store.read(whole));
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

/** The row skips and the format's own skips, together. */
function total(rowSkips: SkipCounter, formatSkips: ReadonlyMap<string, number> | undefined): [string, number][] {
  const all = new SkipCounter(rowSkips.byReason);
  for (const [reason, n] of formatSkips ?? []) all.add(reason, n);
  return [...all.byReason];
}

/** Messages between the main thread and the reader thread. */
export interface ReadRequest {
  readonly id: number;
  readonly full: boolean;
}
export type ReadReply =
  | { readonly id: number; readonly update: MapUpdate | undefined }
  | { readonly id: number; readonly failure: SessionMapFailure; readonly message: string };

/** What the reader thread starts with: the map, and which kind of store reads it (the thread imports that one only). */
export interface ReaderThreadData {
  readonly spec: string;
  readonly kind: 'file' | 'postgres';
}

/**
 * How much nicer the reader thread is than the process, on Linux: its
 * scheduling priority is below requests', so that on a busy core a read
 * takes the CPU that requests leave (about a tenth of it against a
 * request-serving thread at 0) instead of half, and a core with room to
 * spare runs it at full speed. Map changes then wait on a saturated proxy;
 * requests do not wait on reads.
 */
export const READER_NICE = 10;
