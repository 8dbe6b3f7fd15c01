import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

interface MapWatcherOptions {
  /** Fallback check interval for filesystems that send no events (NFS). */
  readonly pollIntervalMs: number;
  /** Quiet period that folds a burst of events into one notification. */
  readonly debounceMs: number;
}

/** Longest a steady stream of events may postpone a notification. */
const MAX_DELAY_FACTOR = 10;

/**
 * Tells when the session map may have changed. Knows nothing of formats.
 *
 * It watches the map's directory rather than the file: Galaxy and SQLite
 * create and delete `<map>.lock`, `<map>-journal` and `<map>-wal` beside it,
 * and editors replace files by rename, which a watch on the file's inode
 * would miss. Every poll tick also notifies, so a store's cheap change check
 * catches what a filesystem without events never reports.
 */
export class MapWatcher {
  private fsWatcher: FSWatcher | undefined;
  private readonly poll: NodeJS.Timeout;
  private debounce: NodeJS.Timeout | undefined;
  private firstPendingAt = 0;
  private closed = false;
  private readonly dir: string;
  private readonly name: string;

  constructor(
    path: string,
    private readonly options: MapWatcherOptions,
    private readonly onMaybeChanged: () => void,
  ) {
    this.dir = dirname(path);
    this.name = basename(path);
    this.startWatching();
    this.poll = setInterval(() => {
      if (this.fsWatcher === undefined) this.startWatching();
      this.onMaybeChanged();
    }, options.pollIntervalMs);
    this.poll.unref();
  }

  /** True while directory events are being received (false: polling only). */
  get watching(): boolean {
    return this.fsWatcher !== undefined;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.poll);
    clearTimeout(this.debounce);
    this.fsWatcher?.close();
    this.fsWatcher = undefined;
  }

  private startWatching(): void {
    if (this.closed) return;
    try {
      const w = watch(this.dir, { persistent: false }, (_event, filename) => {
        // Some platforms omit the name; then any event may concern the map.
        if (filename === null || filename.startsWith(this.name)) this.notifySoon();
      });
      w.on('error', () => {
        // The directory went away or the watch limit was hit: polling covers
        // it and the next tick tries to watch again.
        w.close();
        if (this.fsWatcher === w) this.fsWatcher = undefined;
      });
      this.fsWatcher = w;
    } catch {
      this.fsWatcher = undefined; // directory missing: poll until it appears
    }
  }

  private notifySoon(): void {
    const now = Date.now();
    if (this.debounce === undefined) this.firstPendingAt = now;
    clearTimeout(this.debounce);
    const waited = now - this.firstPendingAt;
    const delay = waited >= this.options.debounceMs * MAX_DELAY_FACTOR ? 0 : this.options.debounceMs;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      if (!this.closed) this.onMaybeChanged();
    }, delay);
  }
}
