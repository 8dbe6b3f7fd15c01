import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { RouteTable, Target } from '../routing/route-table.js';
import type { MapUpdate } from './differ.js';
import { InlineMapReader, WorkerMapReader, type MapReader } from './reader.js';
import type { ReloadReporter } from './reload-report.js';
import { forEachRow } from './rows.js';

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
 * Schedules reads of the session map into the route table: when the store's
 * change watch or a signal says it may have changed, never on the request path.
 *
 * One read at a time: a change noticed during a read triggers another read
 * when it ends, so the last state written is always the one routed. A failed
 * read keeps the last good map; a busy or half-written map is retried soon.
 * A large map moves its reads to the reader thread. What happened is told to
 * the reporter (reload-report.ts), which logs it and keeps the health fields.
 */
export class MapReloader {
  private running: Promise<ReloadOutcome> | undefined;
  private wanted = false;
  private wantFull = false;
  private closed = false;
  private reader: MapReader;
  private threaded = false;
  private retry: NodeJS.Timeout | undefined;
  private retries = 0;
  private readonly workerThreshold: number;

  constructor(
    /** What names the store (a path, a URL): the reader thread opens it by this. */
    private readonly spec: string,
    private readonly table: RouteTable,
    private readonly report: ReloadReporter,
    options: MapReloaderOptions,
  ) {
    this.workerThreshold = options.reader === undefined ? options.workerThreshold : Infinity;
    this.reader = options.reader ?? new InlineMapReader(spec);
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
    let update: MapUpdate | undefined;
    try {
      update = await this.reader.read(full);
    } catch (err) {
      if (this.closed) return 'unchanged';
      this.failed(err);
      return 'failed';
    }
    if (update === undefined) return 'unchanged';
    const changed = await this.apply(update);
    if (this.closed) return 'unchanged';
    this.retries = 0;
    this.report.loaded(update, this.table.size, Math.round((performance.now() - started) * 100) / 100, changed);
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
    this.reader = new WorkerMapReader(this.spec, inline.state(), (err) => this.report.threadFailed(err));
    inline.close();
    this.threaded = true;
  }

  private failed(err: unknown): void {
    const error = this.report.failed(err, this.table.size);
    if ((error.failure === 'busy' || error.failure === 'incomplete') && this.retries < MAX_RETRIES) {
      // Galaxy's writer is mid-way: look again soon, even if no event comes.
      this.retries++;
      this.retry = setTimeout(() => void this.reload(), RETRY_MS);
      this.retry.unref();
    }
  }
}
