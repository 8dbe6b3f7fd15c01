import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { EntryPointTable } from '../routing/entry-point-table.js';
import type { RouteTable, Target } from '../routing/route-table.js';
import type { MapUpdate } from './producer.js';
import { InlineMapReader, type MapReader } from './reader.js';
import type { ReloadReporter } from './reload-report.js';
import { forEachLine, forEachRow, linesOf, parseRoutableEntryPoint, splitIdentity } from './rows.js';
import type { MapRouting, SessionMapFailure } from './store.js';

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
   * Reads through this reader (the daemon's: the reader thread, WorkerMapReader);
   * default: an inline reader on this thread (tests).
   */
  readonly reader?: MapReader;
  /** Called after every successful read or change check (the store's status keeps the time). */
  readonly onSynced?: () => void;
  /** Called after every failed read, with why (the store's watch may need to look again: see ChangeWatch.failed). */
  readonly onFailed?: (failure: SessionMapFailure) => void;
  /** Where an Interactive Tools map (`gxitproxy`) goes; default: a table of the reloader's own. */
  readonly entryPoints?: EntryPointTable;
  /** Called when a read finds what the map routes by: the first good read, and a map that changed kind. */
  readonly onRouting?: (routing: MapRouting) => void;
}

/**
 * Schedules reads of the session map into the route table: when the store's
 * change watch or a signal says it may have changed, never on the request path.
 *
 * One read at a time: a change noticed during a read triggers another read
 * when it ends, so the last state written is always the one routed. A failed
 * read keeps the last good map; a busy or half-written map is retried soon.
 * What happened is told to
 * the reporter (reload-report.ts), which logs it and keeps the health fields.
 */
export class MapReloader {
  private running: Promise<ReloadOutcome> | undefined;
  private wanted = false;
  private wantFull = false;
  private closed = false;
  private readonly reader: MapReader;
  private retry: NodeJS.Timeout | undefined;
  private retries = 0;
  private readonly onSynced: () => void;
  private readonly onFailed: (failure: SessionMapFailure) => void;
  private readonly onRouting: (routing: MapRouting) => void;
  /** The entry points of an Interactive Tools map (the cookie routes go to `table`). */
  readonly entryPoints: EntryPointTable;
  /** What the last successful read routes by; undefined before the first. */
  routing: MapRouting | undefined;

  constructor(
    /** What names the store (a path, a URL), for the default inline reader. */
    spec: string,
    private readonly table: RouteTable,
    private readonly report: ReloadReporter,
    options: MapReloaderOptions = {},
  ) {
    this.reader = options.reader ?? new InlineMapReader(spec);
    this.entryPoints = options.entryPoints ?? new EntryPointTable();
    this.onSynced = options.onSynced ?? (() => {});
    this.onFailed = options.onFailed ?? (() => {});
    this.onRouting = options.onRouting ?? (() => {});
  }

  /** Entries in the table the map fills: sessions, or entry points. */
  get size(): number {
    return this.routing === 'entry-point' ? this.entryPoints.size : this.table.size;
  }

  /**
   * Reads the map if it may have changed (always with `force`, which also
   * rebuilds the table from scratch). Resolves when the read, and any read
   * asked for meanwhile, is done: `reloaded` when any of them changed the routes.
   */
  reload(force = false): Promise<ReloadOutcome> {
    this.wanted = true;
    this.wantFull ||= force;
    if (this.closed) return Promise.resolve('unchanged');
    return (this.running ??= this.run());
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
    let reloaded = false;
    try {
      while (this.wanted && !this.closed) {
        const full = this.wantFull;
        this.wanted = false;
        this.wantFull = false;
        outcome = await this.reloadOnce(full);
        reloaded ||= outcome === 'reloaded';
      }
    } finally {
      this.running = undefined;
    }
    // A read that changed the routes, followed by one that found nothing new, still changed them.
    return outcome === 'unchanged' && reloaded ? 'reloaded' : outcome;
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
    this.onSynced();
    if (update === undefined) return 'unchanged';
    const changed = await this.apply(update);
    if (this.closed) return 'unchanged';
    this.retries = 0;
    this.report.loaded(update, this.size, Math.round((performance.now() - started) * 100) / 100, changed);
    return changed ? 'reloaded' : 'unchanged';
  }

  /** Brings the tables in line with `update`; false when nothing changed. */
  private async apply(update: MapUpdate): Promise<boolean> {
    if (update.kind === 'same') return false;
    const changed = update.routing === 'entry-point' ? await this.applyEntryPoints(update) : await this.applySessions(update);
    if (!changed) return false;
    if (this.routing !== update.routing) {
      // The map now routes the other way (a file replaced by another kind): the other table empties.
      if (update.routing === 'entry-point') this.table.replace(new Map());
      else this.entryPoints.replace([]);
      this.routing = update.routing;
      this.onRouting(update.routing);
    }
    return true;
  }

  private async applySessions(update: Exclude<MapUpdate, { kind: 'same' }>): Promise<boolean> {
    if (update.kind === 'diff') {
      const upserts = new Map<string, Target>();
      forEachRow(update.upserts, 0, Infinity, (key, host, port) => upserts.set(key, { host, port: Number(port) }));
      this.table.apply(upserts, linesOf(update.removals));
      return true;
    }
    const next = this.table.builder();
    const { rows } = update;
    const set = (key: string, host: string, port: string): void => next.set(key, host, Number(port));
    if (!(await this.inSlices(rows, (at, max) => forEachRow(rows, at, max, set)))) return false;
    this.table.install(next);
    return true;
  }

  private async applyEntryPoints(update: Exclude<MapUpdate, { kind: 'same' }>): Promise<boolean> {
    if (update.kind === 'diff') {
      this.entryPoints.apply(linesOf(update.upserts).map(parseRoutableEntryPoint), linesOf(update.removals).map(splitIdentity));
      return true;
    }
    const next = this.entryPoints.builder();
    const { rows } = update;
    const add = (line: string): void => next.add(parseRoutableEntryPoint(line));
    if (!(await this.inSlices(rows, (at, max) => forEachLine(rows, at, max, add)))) return false;
    this.entryPoints.install(next);
    return true;
  }

  /**
   * Runs `step` (which handles up to `max` rows from offset `at` and returns
   * the offset after them) over all of a full rebuild's `rows`, in slices of
   * at most SLICE_MS so that requests are served from the old table
   * meanwhile. False when the reloader was closed before the end.
   */
  private async inSlices(rows: string, step: (at: number, max: number) => number): Promise<boolean> {
    let at = 0;
    while (at < rows.length) {
      const until = performance.now() + SLICE_MS;
      do at = step(at, ROWS_PER_CHECK);
      while (at < rows.length && performance.now() < until);
      if (at < rows.length) {
        await nextTurn();
        if (this.closed) return false;
      }
    }
    return true;
  }

  private failed(err: unknown): void {
    const error = this.report.failed(err, this.size);
    this.onFailed(error.failure);
    if ((error.failure === 'busy' || error.failure === 'incomplete') && this.retries < MAX_RETRIES) {
      // Galaxy's writer is mid-way: look again soon, even if no event comes.
      this.retries++;
      this.retry = setTimeout(() => void this.reload(), RETRY_MS);
      this.retry.unref();
    }
  }
}
