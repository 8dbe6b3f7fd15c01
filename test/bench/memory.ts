import Database from 'better-sqlite3';
import { memory, sampleRss, waitUntilIdle } from './proc-stats.js';
import type { RunningProxy } from './servers.js';

export interface RereadFigures {
  /** RSS once idle before the re-read, the highest sample during it, and once idle after it. */
  readonly beforeMiB: number;
  readonly peakMiB: number;
  readonly afterMiB: number;
  /** The proxy's own `ms` for the full update. */
  readonly ms: number;
}

/**
 * A full re-read of the map (SIGHUP: read it whole and rebuild the table, as
 * after a restart of Galaxy's writer or a change too large for a diff), with
 * the proxy's RSS sampled every 5 ms from the signal until it is idle again.
 */
export async function fullReread(proxy: RunningProxy): Promise<RereadFigures> {
  await waitUntilIdle(proxy.pid);
  const beforeMiB = memory(proxy.pid).rssMiB;
  const sampler = sampleRss(proxy.pid, 5);
  const reloaded = proxy.proxy.logs.next('session map reloaded', 60_000, (l) => l.update === 'full');
  proxy.proxy.child.kill('SIGHUP');
  const line = await reloaded;
  await waitUntilIdle(proxy.pid);
  const { peakMiB } = sampler.stop();
  return { beforeMiB, peakMiB, afterMiB: memory(proxy.pid).rssMiB, ms: Number(line.ms) };
}

/** Rows in a Galaxy SQLite map now (what a fresh reader must find). */
export function mapRows(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT count(*) FROM gxproxy2').pluck().get() as number;
  } finally {
    db.close();
  }
}
