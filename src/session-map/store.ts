import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';

/**
 * The map-store seam: where the session map comes from. A store yields the
 * current rows of the map (in the row form of rows.ts) and tells cheaply
 * whether they may have changed; its kind also says how to hear of changes.
 * Each store remembers what it last answered, and nothing else does: the
 * producer, reader, reloader and route table work the same whatever the
 * store: SQLite and JSON files (file/), PostgreSQL (postgres/).
 */

/** Why a session map could not be read. `waiting` kinds are normal at start-up. */
export type SessionMapFailure =
  | 'missing' // the file does not exist (yet)
  | 'no-table' // the database exists but Galaxy has not created its table yet
  | 'busy' // a writer held a lock longer than our busy timeout
  | 'incomplete' // an empty or half-written JSON file (Galaxy rewrites it in place)
  | 'corrupt' // not a database / wrong shape
  | 'unreadable' // permissions or I/O error
  | 'disconnected' // the database connection is down; the store's watch reports the outage itself
  | 'refused'; // the database refuses the connection for a permanent cause (login, database, TLS); the watch logs it

/** A session map read that failed; the last good map stays in use. */
export class SessionMapError extends Error {
  override readonly name = 'SessionMapError';
  readonly code = 'ERR_GIE_SESSION_MAP';
  constructor(
    readonly failure: SessionMapFailure,
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** True for the states Galaxy's start-up race goes through. */
  get isWaiting(): boolean {
    return this.failure === 'missing' || this.failure === 'no-table' || this.failure === 'incomplete';
  }
}


/**
 * What a map routes by: session cookies (`gxproxy2`, `gxproxy`, the JSON
 * maps; rows `key TAB host TAB port`) or Interactive Tools entry points
 * (`gxitproxy`; the rows described below).
 */
export type MapRouting = 'cookie' | 'entry-point';

/**
 * Largest change set the route table takes as a diff. The main thread
 * applies a diff in one synchronous step, so its size bounds that step; a
 * bigger change is a full rebuild, which the main thread spreads over short
 * slices. A store answers `whole` rather than list more changed rows than this.
 */
export const MAX_DIFF_ENTRIES = 2000;

/**
 * How long changes read on their own may stand before a whole read checks
 * them: the bound on how long a change in a store's blind spot (an SQLite
 * UPDATE in place in the same interval as other changes) can go unrouted.
 * The store that reads changes keeps this clock (see ChangeCheck). A whole
 * read of 100,000 SQLite rows takes about half a second of the reader thread,
 * so this costs under 1 % of a core while Galaxy writes, and nothing while it
 * does not.
 */
export const VERIFY_AFTER_MS = 60_000;

/** The whole map, in the row form of rows.ts (not yet validated). */
export interface MapRead {
  readonly kind: 'whole';
  /** What was read, e.g. `sqlite gxproxy2` or `json`. */
  readonly format: string;
  /** What its rows route by, which also says their form (see rows.ts). */
  readonly routing: MapRouting;
  /** One raw row per entry, `key TAB host TAB port LF` for cookie maps (see rows.ts). */
  readonly rows: string;
  /** True when no identity occurs twice in `rows` (a primary key, JSON object keys). */
  readonly uniqueKeys: boolean;
  /** Entries the format could not even turn into a row, by reason. */
  readonly skipped: ReadonlyMap<string, number>;
}

/**
 * What changed in a map since the store's own last answer. Rows are raw rows
 * (rows.ts) whose identities cannot repeat; `removed` holds each removed or
 * replaced row as it was, `inserted` each new or replacing row as it is now.
 */
export interface MapChanges {
  readonly kind: 'changes';
  readonly format: string;
  readonly routing: MapRouting;
  readonly removed: string;
  readonly inserted: string;
  /** The format's own skips (as MapRead's) in the whole map now, for a format that has any. */
  readonly skipped?: ReadonlyMap<string, number>;
}

/** A store's answer to a read: the whole map, or what changed since its last answer. */
export type MapAnswer = MapRead | MapChanges;

/**
 * One opened map store. Each thread that reads the map opens the store once
 * and keeps it. The store alone remembers what it last answered: its answers
 * are the whole map or the changes since that answer, never part of a map.
 */
export interface MapStore {
  /** What is read, for log lines, `--check` and `/health`: a path, or an address without its password. */
  readonly label: string;
  /**
   * A cheap token that changes whenever the map may have changed (file
   * identity, size, times, SQLite's data_version). Undefined when it cannot be
   * told (no file, an error, a check of changes due): the map must then be read.
   */
  version(): Promise<string | undefined>;
  /**
   * Reads the map: `whole` (a forced read, a first read, a rebuild) answers
   * with the whole map; otherwise the store answers with what changed since its
   * last answer when it can tell, and with the whole map when it cannot
   * (keys that may repeat, no earlier answer, more than MAX_DIFF_ENTRIES
   * changed rows). Rejects with SessionMapError; a failed read leaves the
   * last answer as it was, or makes the next answer whole.
   */
  read(whole: boolean): Promise<MapAnswer>;
  /** Releases handles and connections; the store may be used again afterwards (it reopens, its next answer whole). */
  close(): void;
}

/**
 * A map in a file, read synchronously (SQLite through better-sqlite3, JSON
 * through readFileSync): file-store.ts makes a MapStore of it. Reads are done
 * on the reader thread, so they never hold up requests.
 */
export interface FileMap {
  readonly path: string;
  /** As MapStore.version, synchronously. */
  version(): string | undefined;
  /** As MapStore.read, synchronously. Throws SessionMapError. */
  read(whole: boolean): MapAnswer;
  close(): void;
}

/**
 * The clock of a store that reads changes on their own (VERIFY_AFTER_MS):
 * when the first change read that way since the last whole read was read,
 * and whether a whole read is due to check them.
 */
export class ChangeCheck {
  private since: number | undefined;

  constructor(private readonly afterMs: number = VERIFY_AFTER_MS) {}

  /** True when changes read on their own have stood for afterMs: the next read must be whole. */
  get due(): boolean {
    return this.since !== undefined && performance.now() - this.since >= this.afterMs;
  }

  /** Changes were read on their own (none: nothing awaits a check). */
  changesRead(changes: { readonly removed: string; readonly inserted: string }): void {
    if (changes.removed !== '' || changes.inserted !== '') this.since ??= performance.now();
  }

  /** The whole map was read: everything read before is checked. */
  wholeRead(): void {
    this.since = undefined;
  }
}

/** How a store's kind tells of changes. */
export interface ChangeWatchOptions {
  /** Look for changes this often even when nothing signals one (NFS, a missed notification). */
  readonly pollIntervalMs: number;
  /** Quiet period that folds a burst of signals into one notification. */
  readonly debounceMs: number;
  /** Where a store with a connection of its own says that it went away and came back. */
  readonly log?: Logger;
}

/** A running change watch. */
export interface ChangeWatch {
  /** True while change signals arrive (file events, database notifications); false: polling only. */
  readonly watching: boolean;
  /** The store's own state for /health (a database connection), when it has one. */
  status?(): object;
  /** Told after each successful read or change check, wherever it ran (for status()). */
  synced?(): void;
  /**
   * Told after each failed read, wherever it ran, with why. A read on the
   * reader thread goes over a connection of the thread's own: what it finds
   * (no table yet; that connection not up while the watch's is, so that the
   * read the watch asked for must be asked again) only reaches the watch so.
   */
  failed?(failure: SessionMapFailure): void;
  /**
   * Resolves once the watch hears changes (a database connection LISTENing),
   * or after a bounded wait when it cannot yet: a read made afterwards, over
   * whatever connection, misses no change the watch would not report. Absent:
   * the watch hears changes from the start.
   */
  ready?(): Promise<void>;
  close(): void;
}

/** A kind of store: how to open one, and how to hear that it may have changed. */
export interface StoreKind {
  /** Opens the store `spec` names (a path, a URL). Opening does no I/O; reads do. */
  open(spec: string): MapStore;
  /**
   * Calls `onMaybeChanged` whenever the map `spec` names may have changed
   * (and at least every poll interval). It is fine to call it too often: a
   * read happens only when the store's version moved.
   */
  watch(spec: string, options: ChangeWatchOptions, onMaybeChanged: () => void): ChangeWatch;
}
