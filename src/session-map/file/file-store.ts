import { closeSync, openSync, readSync } from 'node:fs';
import { JsonSessionMap } from './json-store.js';
import { SqliteSessionMap } from './sqlite-store.js';
import type { ChangeWatch, ChangeWatchOptions, FileMap, MapAnswer, MapStore, StoreKind } from '../store.js';
import { MapWatcher } from './watcher.js';

/** The shortest poll of a file map (ms); a shorter --poll-interval counts as this. */
export const MIN_FILE_POLL_MS = 10;

/** The first 16 bytes of every SQLite 3 database file. */
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/** True when the file at `path` starts with the SQLite header. */
function hasSqliteHeader(path: string): boolean {
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
    return new FileStore(path);
  },
  watch(path: string, options: ChangeWatchOptions, onMaybeChanged: () => void): ChangeWatch {
    // A stat every few milliseconds at most: 0 would re-read the map in a busy loop.
    return new MapWatcher(path, { ...options, pollIntervalMs: Math.max(options.pollIntervalMs, MIN_FILE_POLL_MS) }, onMaybeChanged);
  },
};

/** The map file at `path`, as SQLite or JSON as its name and first bytes say. */
class FileStore implements MapStore {
  private inner: FileMap | undefined;
  private readonly sqliteByName: boolean;

  constructor(readonly label: string) {
    this.sqliteByName = label.endsWith('.sqlite');
  }

  version(): Promise<string | undefined> {
    return this.attempt(() => {
      const map = this.current();
      const version = map.version();
      return version === undefined ? undefined : `${map instanceof SqliteSessionMap ? 'sqlite' : 'json'}:${version}`;
    });
  }

  read(whole: boolean): Promise<MapAnswer> {
    return this.attempt(() => this.current().read(whole));
  }

  close(): void {
    this.inner?.close();
    this.inner = undefined;
  }

  private attempt<T>(fn: () => T): Promise<T> {
    // A throw in the executor rejects the promise with what was thrown.
    return new Promise<T>((resolve) => resolve(fn()));
  }

  /** The reader for what the file is now: a file that changes format is followed (its first answer whole). */
  private current(): FileMap {
    const sqlite = this.sqliteByName || hasSqliteHeader(this.label);
    if (this.inner === undefined || sqlite !== this.inner instanceof SqliteSessionMap) {
      this.inner?.close();
      this.inner = sqlite ? new SqliteSessionMap(this.label) : new JsonSessionMap(this.label);
    }
    return this.inner;
  }
}
