import { performance } from 'node:perf_hooks';
import { SessionMapError } from './errors.js';
import type { Logger } from './log.js';
import type { ProxyObserver } from './observer.js';
import type { RouteTable } from './route-table.js';
import type { SessionMapSource } from './session-map.js';

/** Retry delay after Galaxy's writer held the database lock through our short busy timeout. */
const BUSY_RETRY_MS = 100;

/** Outcome of one reload attempt, for callers and tests. */
export type ReloadOutcome = 'reloaded' | 'unchanged' | 'failed';

/**
 * Reads the session map into the route table when it may have changed.
 * Runs from timers and file events only, never on the request path. A failed
 * read keeps the last good map and is reported once until it recovers.
 */
export class MapReloader {
  private lastFailure: string | undefined;
  private retry: NodeJS.Timeout | undefined;
  private everLoaded = false;
  /** A warning (not just the start-up "waiting" note) was logged for the current failure streak. */
  private warned = false;
  /** When the map was last read successfully (ms since epoch). */
  lastLoadedAt: number | undefined;
  /** The format of the last successful read, e.g. `sqlite gxproxy2`. */
  lastFormat: string | undefined;
  /** Error of the most recent failed read, cleared by a successful one. */
  lastError: SessionMapError | undefined;

  constructor(
    private readonly source: SessionMapSource,
    private readonly table: RouteTable,
    private readonly log: Logger,
    private readonly observer: ProxyObserver = {},
  ) {}

  /** Reloads when the source reports a change (or `force`). */
  reload(force = false): ReloadOutcome {
    clearTimeout(this.retry);
    this.retry = undefined;
    const started = performance.now();
    let snapshot;
    try {
      if (!force && this.lastError === undefined && !this.source.hasChanged()) return 'unchanged';
      snapshot = this.source.read();
    } catch (err) {
      this.failed(err);
      return 'failed';
    }
    this.table.replace(snapshot.routes);
    this.lastFormat = snapshot.format;
    const ms = Math.round((performance.now() - started) * 100) / 100;
    const recovered = this.lastFailure !== undefined && this.warned;
    this.lastFailure = undefined;
    this.lastError = undefined;
    this.warned = false;
    this.everLoaded = true;
    this.lastLoadedAt = Date.now();
    this.observer.reloaded?.(snapshot.routes.size, ms / 1000);
    this.log.info({ sessions: snapshot.routes.size, ms, format: snapshot.format, path: this.source.path }, 'session map reloaded');
    if (snapshot.skipped.size > 0) {
      const skipped = Object.fromEntries(snapshot.skipped);
      const count = [...snapshot.skipped.values()].reduce((a, b) => a + b, 0);
      this.log.warn({ skipped, count, path: this.source.path }, 'session map entries skipped; the rest are routed');
    }
    if (recovered) this.log.info({ path: this.source.path }, 'session map readable again');
    return 'reloaded';
  }

  close(): void {
    clearTimeout(this.retry);
  }

  private failed(err: unknown): void {
    const error =
      err instanceof SessionMapError
        ? err
        : new SessionMapError('unreadable', this.source.path, `session map ${this.source.path}: ${String(err)}`, { cause: err });
    this.lastError = error;
    this.observer.reloadFailed?.(error.failure);
    if (error.failure === 'busy') {
      this.retry = setTimeout(() => this.reload(), BUSY_RETRY_MS);
      this.retry.unref();
    }
    // One report per kind of failure until a read succeeds again.
    if (this.lastFailure === error.failure) return;
    this.lastFailure = error.failure;
    if (error.isWaiting && !this.everLoaded) {
      // Galaxy's start-up race: normal, so no stack and no warning.
      this.log.info({ path: this.source.path, reason: error.failure, detail: error.message }, 'session map not ready yet; routing nothing until Galaxy writes it');
    } else {
      this.warned = true;
      this.log.warn(
        { path: this.source.path, reason: error.failure, detail: error.message, sessions: this.table.size },
        'session map unreadable; keeping the last good map',
      );
    }
  }
}
