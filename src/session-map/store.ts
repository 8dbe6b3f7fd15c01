import type { Logger } from '../log.js';

/**
 * The map-store seam: where the session map comes from. A store yields the
 * current rows of the map (in the row form of rows.ts) and tells cheaply
 * whether they may have changed; its kind also says how to hear of changes.
 * The reader, differ, reloader and route table work the same whatever the
 * store: SQLite and JSON files (file-store.ts), PostgreSQL (postgres/).
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

/** One complete read of a session map, in the row form of rows.ts (not yet validated). */
export interface MapRead {
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
 * What changed in a map since the store's previous read, told without reading
 * the whole map (see MapStore.readChanges). Rows are raw rows (rows.ts) whose
 * identities cannot repeat; `removed` holds each removed or replaced row as it
 * was, `inserted` each new or replacing row as it is now.
 */
export interface MapChanges {
  readonly format: string;
  readonly routing: MapRouting;
  readonly removed: string;
  readonly inserted: string;
}

/**
 * One opened map store. Each thread that reads the map opens the store once
 * and keeps it; `read()` either resolves with a complete read or rejects with
 * SessionMapError, never with part of a map.
 */
export interface MapStore {
  /** What is read, for log lines, `--check` and `/health`: a path, or an address without its password. */
  readonly label: string;
  /**
   * A cheap token that changes whenever the map may have changed (file
   * identity, size, times, SQLite's data_version). Undefined when it cannot be
   * told (no file, an error): the map must then be read.
   */
  version(): Promise<string | undefined>;
  /** Reads the whole map from its source. Rejects with SessionMapError. */
  read(): Promise<MapRead>;
  /**
   * Optional: what changed since this store's previous read (whole or not),
   * when the store can tell that cheaply and for certain within what it
   * checks; undefined when it cannot, and the caller then reads the whole map.
   * A store that has blind spots says so, and its caller covers them with a
   * periodic whole read (update.ts). Rejects with SessionMapError.
   */
  readChanges?(): Promise<MapChanges | undefined>;
  /**
   * Optional: what this store knows of its earlier reads, as data that can be
   * posted to another thread, for the store StoreKind.open makes of it there
   * to carry on from (undefined: nothing worth handing over). The reader
   * thread starts with it (reader.ts), so that its first read of a change is
   * not a whole read.
   */
  handOver?(): unknown;
  /** Releases handles and connections; the store may be used again afterwards (it reopens). */
  close(): void;
}

/**
 * A map in a file, read synchronously (SQLite through better-sqlite3, JSON
 * through readFileSync): file-store.ts makes a MapStore of it. Reads this
 * fast are done inline for small maps and on the reader thread for large
 * ones, so they never hold up requests.
 */
export interface FileMap {
  readonly path: string;
  /** As MapStore.version, synchronously. */
  version(): string | undefined;
  /** As MapStore.read, synchronously. Throws SessionMapError. */
  read(): MapRead;
  /** As MapStore.readChanges, synchronously, for the formats that can tell. */
  readChanges?(): MapChanges | undefined;
  /** As MapStore.handOver, for the formats that keep something between reads. */
  handOver?(): unknown;
  close(): void;
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
  close(): void;
}

/** A kind of store: how to open one, and how to hear that it may have changed. */
export interface StoreKind {
  /**
   * Opens the store `spec` names (a path, a URL). Opening does no I/O; reads
   * do. `handedOver`: what a store of this kind on another thread handed over
   * (MapStore.handOver), when the kind takes it.
   */
  open(spec: string, handedOver?: unknown): MapStore;
  /**
   * Calls `onMaybeChanged` whenever the map `spec` names may have changed
   * (and at least every poll interval). It is fine to call it too often: a
   * read happens only when the store's version moved.
   */
  watch(spec: string, options: ChangeWatchOptions, onMaybeChanged: () => void): ChangeWatch;
}
