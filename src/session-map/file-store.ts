import { closeSync, openSync, readSync } from 'node:fs';
import { JsonSessionMap } from './json-store.js';
import { SqliteSessionMap } from './sqlite-store.js';
import type { ChangeWatch, ChangeWatchOptions, MapRead, MapStore, StoreKind } from './store.js';
import { MapWatcher } from './watcher.js';

/** The first 16 bytes of every SQLite 3 database file. */
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

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

/**
 * A session map in a file Galaxy writes. A file that starts with the SQLite
 * header is an SQLite database whatever its name; otherwise the legacy rule
 * holds: a path ending in `.sqlite` is SQLite, anything else is JSON. The
 * content is looked at again on every check, so a map that changes format
 * is followed.
 */
export const fileStores: StoreKind = {
  open(path: string): MapStore {
    return path.endsWith('.sqlite') ? new SqliteSessionMap(path) : new SniffedSessionMap(path);
  },
  watch(path: string, options: ChangeWatchOptions, onMaybeChanged: () => void): ChangeWatch {
    return new MapWatcher(path, options, onMaybeChanged);
  },
};

/** A map whose name does not say its format: SQLite when the header says so, else JSON. */
class SniffedSessionMap implements MapStore {
  private inner: SqliteSessionMap | JsonSessionMap | undefined;

  constructor(readonly label: string) {}

  async version(): Promise<string | undefined> {
    const source = this.current();
    const version = await source.version();
    return version === undefined ? undefined : `${source instanceof SqliteSessionMap ? 'sqlite' : 'json'}:${version}`;
  }

  read(): Promise<MapRead> {
    return this.current().read();
  }

  close(): void {
    this.inner?.close();
    this.inner = undefined;
  }

  private current(): SqliteSessionMap | JsonSessionMap {
    const sqlite = hasSqliteHeader(this.label);
    if (this.inner === undefined || sqlite !== this.inner instanceof SqliteSessionMap) {
      this.inner?.close();
      this.inner = sqlite ? new SqliteSessionMap(this.label) : new JsonSessionMap(this.label);
    }
    return this.inner;
  }
}
