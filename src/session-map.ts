import { closeSync, openSync, readSync } from 'node:fs';
import { JsonSessionMap } from './json-session-map.js';
import { SqliteSessionMap } from './sqlite-session-map.js';

export { invalidTargetReason } from './map-rows.js';

/** Where one user's container listens. */
export interface Target {
  readonly host: string;
  readonly port: number;
}

/** One complete read of a session map, in the row form of map-rows.ts (not yet validated). */
export interface MapRead {
  /** What was read, e.g. `sqlite gxproxy2` or `json`. */
  readonly format: string;
  /** One `key TAB host TAB port LF` line per entry (see map-rows.ts). */
  readonly rows: string;
  /** True when no key occurs twice in `rows` (a primary key, JSON object keys). */
  readonly uniqueKeys: boolean;
  /** Entries the format could not even turn into a row, by reason. */
  readonly skipped: ReadonlyMap<string, number>;
}

/** One complete, validated read: cookie value → container. */
export interface SessionMapSnapshot {
  readonly routes: Map<string, Target>;
  /** Human-readable description of what was read, e.g. `sqlite gxproxy2`. */
  readonly format: string;
  /** Entries that could not be used, by reason; empty when all loaded. */
  readonly skipped: ReadonlyMap<string, number>;
}

/**
 * A session map store. `read()` either returns a complete read or throws
 * SessionMapError; it never returns part of a map.
 */
export interface SessionMapSource {
  readonly path: string;
  /**
   * A cheap token that changes whenever the map may have changed (file
   * identity, size, times, SQLite's data_version). Undefined when it cannot be
   * told (no file, an error): the map must then be read.
   */
  version(): string | undefined;
  /** Reads the whole map. Throws SessionMapError. */
  read(): MapRead;
  /** Releases file handles; the source may be used again afterwards (it reopens). */
  close(): void;
}

/** The first 16 bytes of every SQLite 3 database file. */
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * Opens the store for `path`. A file that starts with the SQLite header is an
 * SQLite database whatever its name; otherwise the legacy rule holds: a path
 * ending in `.sqlite` is SQLite, anything else is JSON. The content is looked
 * at again on every check, so a map that changes format is followed.
 */
export function openSessionMap(path: string): SessionMapSource {
  if (path.endsWith('.sqlite')) return new SqliteSessionMap(path);
  return new SniffedSessionMap(path);
}

/** True when the file at `path` starts with the SQLite header. */
export function hasSqliteHeader(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const head = Buffer.alloc(SQLITE_HEADER.length);
    return readSync(fd, head, 0, head.length, 0) === head.length && head.equals(SQLITE_HEADER);
  } catch {
    return false; // missing or unreadable: the read itself reports why
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A map whose name does not say its format: SQLite when the header says so, else JSON. */
class SniffedSessionMap implements SessionMapSource {
  private inner: SessionMapSource | undefined;
  private sqlite = false;

  constructor(readonly path: string) {}

  version(): string | undefined {
    const source = this.current();
    const version = source.version();
    return version === undefined ? undefined : `${this.sqlite ? 'sqlite' : 'json'}:${version}`;
  }

  read(): MapRead {
    return this.current().read();
  }

  close(): void {
    this.inner?.close();
    this.inner = undefined;
  }

  private current(): SessionMapSource {
    const sqlite = hasSqliteHeader(this.path);
    if (this.inner === undefined || sqlite !== this.sqlite) {
      this.inner?.close();
      this.inner = sqlite ? new SqliteSessionMap(this.path) : new JsonSessionMap(this.path);
      this.sqlite = sqlite;
    }
    return this.inner;
  }
}
