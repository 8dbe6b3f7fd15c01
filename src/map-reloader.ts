import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { SessionMapError } from './errors.js';
import type { Logger } from './log.js';
import type { MapUpdate } from './map-differ.js';
import { InlineMapReader, WorkerMapReader, type MapReader } from './map-reader.js';
import { forEachRow } from './map-rows.js';
import type { ProxyObserver } from './observer.js';
import type { RouteTable } from './route-table.js';
import type { SessionMapSource, Target } from './session-map.js';

/** Retry delay after a busy database or a half-written JSON file. */
const RETRY_MS = 100;
/** Quick retries per failure streak; afterwards file events and the poll carry on. */
const MAX_RETRIES = 50;
/** Longest stretch a full rebuild runs before letting requests through. */
const SLICE_MS = 4;
/** Rows handled between two looks at the clock during a rebuild. */
const ROWS_PER_CHECK = 256;

/** Outcome of one reload attempt, for callers and tests. */
export type ReloadOutcome = 'reloaded' | 'unchanged' | 'failed';

export interface MapReloaderOptions {
  /**
   * Sessions from which reads move to a worker thread: reading and comparing
   * 100,000 rows takes tens of milliseconds that requests would otherwise
   * wait for, while a small map is read in well under a millisecond.
   */
  readonly workerThreshold: number;
  /** Reads through this reader instead of the built-in ones (and never moves to a thread). */
  readonly reader?: MapReader;
}

/**
 * Reads the session map into the route table when it may have changed.
 * Runs from timers and file events only, never on the request path.
 *
 * One read at a time: a change noticed during a read triggers another read
 * when it ends, so the last state written is always the one routed. A failed
 * read keeps the last good map and is reported once until it recovers.
 */
export class MapReloader {
  private running: Promise<ReloadOutcome> | undefined;
  private wanted = false;
  private wantFull = false;
  private closed = false;
  /** Source version of the last successful read; a read happens only when it moves. */
  private readVersion: string | undefined;
  private reader: MapReader;
  private threaded = false;
  private retry: NodeJS.Timeout | undefined;
  private retries = 0;
  private lastFailure: string | undefined;
  private everLoaded = false;
  /** A warning (not just the start-up "waiting" note) was logged for the current failure streak. */
  private warned = false;
  private lastSkipped = '';
  private readonly workerThreshold: number;
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
    options: MapReloaderOptions,
  ) {
    this.workerThreshold = options.reader === undefined ? options.workerThreshold : Infinity;
    this.reader = options.reader ?? new InlineMapReader(source.path);
  }

  /**
   * Reads the map if it may have changed (always with `force`, which also
   * rebuilds the table from scratch). Resolves when the read, and any read
   * asked for meanwhile, is done.
   */
  reload(force = false): Promise<ReloadOutcome> {
    this.wanted = true;
    this.wantFull ||= force;
    if (this.closed) return Promise.resolve('unchanged');
    return (this.running ??= this.run());
  }

  /** True once reads happen on the worker thread. */
  get readsOnThread(): boolean {
    return this.threaded;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    this.reader.close();
  }

  private async run(): Promise<ReloadOutcome> {
    // Yield once, so that `running` is set before this can finish.
    await Promise.resolve();
    let outcome: ReloadOutcome = 'unchanged';
    try {
      while (this.wanted && !this.closed) {
        const full = this.wantFull;
        this.wanted = false;
        this.wantFull = false;
        outcome = await this.reloadOnce(full);
      }
    } finally {
      this.running = undefined;
    }
    return outcome;
  }

  private async reloadOnce(full: boolean): Promise<ReloadOutcome> {
    clearTimeout(this.retry);
    this.retry = undefined;
    const started = performance.now();
    // Version first: a change after this point only causes one more read.
    const version = this.source.version();
    if (!full && version !== undefined && version === this.readVersion) return 'unchanged';
    let update: MapUpdate;
    try {
      update = await this.reader.read(full);
    } catch (err) {
      if (this.closed) return 'unchanged';
      this.readVersion = undefined;
      this.failed(err);
      return 'failed';
    }
    const changed = await this.apply(update);
    if (this.closed) return 'unchanged';
    this.readVersion = version;
    const ms = Math.round((performance.now() - started) * 100) / 100;
    const recovered = this.lastFailure !== undefined && this.warned;
    this.lastFailure = undefined;
    this.lastError = undefined;
    this.warned = false;
    this.retries = 0;
    this.everLoaded = true;
    this.lastLoadedAt = Date.now();
    this.lastFormat = update.format;
    this.observer.reloaded?.(this.table.size, ms / 1000);
    if (changed) {
      this.log.info({ sessions: this.table.size, ms, format: update.format, path: this.source.path, update: update.kind }, 'session map reloaded');
    }
    this.reportSkipped(update.skipped);
    if (recovered) this.log.info({ path: this.source.path }, 'session map readable again');
    if (!this.threaded && this.table.size >= this.workerThreshold) this.moveToThread();
    return changed ? 'reloaded' : 'unchanged';
  }

  /** Brings the table in line with `update`; false when nothing changed. */
  private async apply(update: MapUpdate): Promise<boolean> {
    if (update.kind === 'same') return false;
    if (update.kind === 'diff') {
      const upserts = new Map<string, Target>();
      forEachRow(update.upserts, 0, Infinity, (key, host, port) => upserts.set(key, { host, port: Number(port) }));
      const removals = update.removals === '' ? [] : update.removals.slice(0, -1).split('\n');
      this.table.apply(upserts, removals);
      return true;
    }
    // A full rebuild of a large map is built in slices while requests are
    // served from the old map, then swapped in whole.
    const { rows } = update;
    const next = this.table.builder();
    let at = 0;
    while (at < rows.length) {
      const until = performance.now() + SLICE_MS;
      do at = forEachRow(rows, at, ROWS_PER_CHECK, (key, host, port) => next.set(key, host, Number(port)));
      while (at < rows.length && performance.now() < until);
      if (at < rows.length) {
        await nextTurn();
        if (this.closed) return false;
      }
    }
    this.table.install(next);
    return true;
  }

  /**
   * From now on the map is read on a worker thread. The thread starts with the
   * last read, so the next change is again a small diff, not a rebuild.
   */
  private moveToThread(): void {
    const inline = this.reader;
    if (!(inline instanceof InlineMapReader)) return;
    this.reader = new WorkerMapReader(this.source.path, inline.state(), (err) => {
      this.log.error({ err }, 'session map reader thread failed; reading on the main thread');
    });
    inline.close();
    this.threaded = true;
  }

  /** One warning whenever the set of skipped entries changes (Galaxy never deletes rows). */
  private reportSkipped(skipped: [string, number][]): void {
    const summary = JSON.stringify(skipped.sort(([a], [b]) => a.localeCompare(b)));
    if (summary === this.lastSkipped) return;
    this.lastSkipped = summary;
    if (skipped.length === 0) return;
    const count = skipped.reduce((sum, [, n]) => sum + n, 0);
    this.log.warn({ skipped: Object.fromEntries(skipped), count, path: this.source.path }, 'session map entries skipped; the rest are routed');
  }

  private failed(err: unknown): void {
    const error =
      err instanceof SessionMapError
        ? err
        : new SessionMapError('unreadable', this.source.path, `session map ${this.source.path}: ${String(err)}`, { cause: err });
    this.lastError = error;
    this.observer.reloadFailed?.(error.failure);
    if ((error.failure === 'busy' || error.failure === 'incomplete') && this.retries < MAX_RETRIES) {
      // Galaxy's writer is mid-way: look again soon, even if no event comes.
      this.retries++;
      this.retry = setTimeout(() => void this.reload(), RETRY_MS);
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
