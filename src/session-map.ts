import { SessionMapError } from './errors.js';
import { SqliteSessionMap } from './sqlite-session-map.js';

/** Where one user's container listens. */
export interface Target {
  readonly host: string;
  readonly port: number;
}

/** One complete read of the session map: cookie value → container. */
export interface SessionMapSnapshot {
  readonly routes: Map<string, Target>;
  /** Human-readable description of what was read, e.g. `sqlite gxproxy2`. */
  readonly format: string;
  /** Entries that could not be used, by reason; empty when all loaded. */
  readonly skipped: ReadonlyMap<string, number>;
}

/**
 * A session map store. `read()` either returns a complete snapshot or throws
 * SessionMapError; it never returns a partial map.
 */
export interface SessionMapSource {
  readonly path: string;
  /**
   * Cheap check run on every file event and poll tick: false only when the
   * map certainly has not changed since the last successful read.
   */
  hasChanged(): boolean;
  /** Reads the whole map. Throws SessionMapError. */
  read(): SessionMapSnapshot;
  /** Releases file handles; the source may not be used afterwards. */
  close(): void;
}

/**
 * Opens the store for `path`: a path ending in `.sqlite` is an SQLite
 * database written by Galaxy (the legacy rule).
 */
export function openSessionMap(path: string): SessionMapSource {
  if (path.endsWith('.sqlite')) return new SqliteSessionMap(path);
  throw new SessionMapError('unreadable', path, `unsupported session map format for ${path}: only .sqlite maps are read`);
}

const HOSTNAME = /^[A-Za-z0-9._:[\]-]+$/;

/**
 * Validates one map entry; returns the reason it is unusable, or undefined.
 * Shared by every format so that they skip the same things for the same reasons.
 */
export function invalidTargetReason(host: unknown, port: unknown): string | undefined {
  if (typeof host !== 'string' || host.length === 0) return 'missing host';
  if (!HOSTNAME.test(host)) return 'malformed host';
  const n = typeof port === 'string' && /^\d+$/.test(port) ? Number(port) : port;
  if (typeof n !== 'number' && typeof n !== 'bigint') return 'non-numeric port';
  if (!Number.isInteger(Number(n)) || Number(n) < 1 || Number(n) > 65535) return 'port out of range';
  return undefined;
}

/** Counts skipped entries by reason, for the one warning a reload logs. */
export class SkipCounter {
  readonly byReason = new Map<string, number>();
  add(reason: string): void {
    this.byReason.set(reason, (this.byReason.get(reason) ?? 0) + 1);
  }
}
