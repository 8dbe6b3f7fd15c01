import type { Logger } from '../log.js';
import type { ProxyObserver } from '../observer.js';
import { SessionMapError } from './store.js';

/** Log messages of the session map that admins (and tests) match on. */
export const MAP_LOG = Object.freeze({
  reloaded: 'session map reloaded',
  notReady: 'session map not ready yet; routing nothing until Galaxy writes it',
  unreadable: 'session map unreadable; keeping the last good map',
  readableAgain: 'session map readable again',
  skipped: 'session map entries skipped; the rest are routed',
  threadFailed: 'session map reader thread failed; reading on the main thread',
});

/** What /health shows of the map, kept current by the reporter. */
interface MapStatus {
  /** When the map was last read successfully (ms since epoch). */
  readonly lastLoadedAt: number | undefined;
  /** The format of the last successful read, e.g. `sqlite gxproxy2`. */
  readonly lastFormat: string | undefined;
  /** Error of the most recent failed read, cleared by a successful one. */
  readonly lastError: SessionMapError | undefined;
}

/**
 * Everything the reloader has to say, said once: the log lines (one per
 * reload, one per failure streak, one when readable again, one per change in
 * the skipped entries), the observer hooks behind /metrics, and the fields
 * /health reads. The reloader only schedules; this only reports.
 */
export class ReloadReporter implements MapStatus {
  lastLoadedAt: number | undefined;
  lastFormat: string | undefined;
  lastError: SessionMapError | undefined;
  private lastFailure: string | undefined;
  private everLoaded = false;
  /** A warning (not just the start-up "waiting" note) was logged for the current failure streak. */
  private warned = false;
  private lastSkipped = '';

  constructor(
    /** The store's label (a path, or an address without password). */
    private readonly label: string,
    private readonly log: Logger,
    private readonly observer: ProxyObserver = {},
  ) {}

  /** A read succeeded; `changed` when the route table changed. */
  loaded(update: { format: string; kind: string; skipped: [string, number][] }, sessions: number, ms: number, changed: boolean): void {
    const recovered = this.lastFailure !== undefined && this.warned;
    this.lastFailure = undefined;
    this.lastError = undefined;
    this.warned = false;
    this.everLoaded = true;
    this.lastLoadedAt = Date.now();
    this.lastFormat = update.format;
    this.observer.reloaded?.(sessions, ms / 1000);
    if (changed) this.log.info({ sessions, ms, format: update.format, path: this.label, update: update.kind }, MAP_LOG.reloaded);
    this.reportSkipped(update.skipped);
    if (recovered) this.log.info({ path: this.label }, MAP_LOG.readableAgain);
  }

  /** A read failed; the last good map (of `sessions` entries) stays in use. Returns the failure as a SessionMapError. */
  failed(err: unknown, sessions: number): SessionMapError {
    const error =
      err instanceof SessionMapError ? err : new SessionMapError('unreadable', this.label, `session map ${this.label}: ${String(err)}`, { cause: err });
    this.lastError = error;
    this.observer.reloadFailed?.(error.failure);
    // One report per kind of failure until a read succeeds again.
    if (this.lastFailure === error.failure) return error;
    // A database store's watch logs its outage (or why it is refused) once, and its return.
    if (error.failure === 'disconnected' || error.failure === 'refused') return error;
    this.lastFailure = error.failure;
    if (error.isWaiting && !this.everLoaded) {
      // Galaxy's start-up race: normal, so no stack and no warning.
      this.log.info({ path: this.label, reason: error.failure, detail: error.message }, MAP_LOG.notReady);
    } else {
      this.warned = true;
      this.log.warn({ path: this.label, reason: error.failure, detail: error.message, sessions }, MAP_LOG.unreadable);
    }
    return error;
  }

  /** The reader thread died; reads go on on the main thread. */
  threadFailed(err: Error): void {
    this.log.error({ err }, MAP_LOG.threadFailed);
  }

  /** One warning whenever the set of skipped entries changes (Galaxy never deletes rows). */
  private reportSkipped(skipped: [string, number][]): void {
    const summary = JSON.stringify([...skipped].sort(([a], [b]) => a.localeCompare(b)));
    if (summary === this.lastSkipped) return;
    this.lastSkipped = summary;
    if (skipped.length === 0) return;
    const count = skipped.reduce((sum, [, n]) => sum + n, 0);
    this.log.warn({ skipped: Object.fromEntries(skipped), count, path: this.label }, MAP_LOG.skipped);
  }
}
