import { readFileSync, statSync } from 'node:fs';
import { SessionMapError } from '../store.js';
import { changesSince, LastRowWins, rowLine, SkipCounter, splitHostPort } from '../rows.js';
import type { FileMap, MapAnswer, MapRead } from '../store.js';

/**
 * How long after its last change a file's size and times are not trusted to
 * reveal a further change. Linux stamps files with a clock that advances in
 * steps of a few milliseconds (NFS servers and some filesystems: a second or
 * more), so two rewrites of the same length in one step look identical.
 * Until the file has been still this long, every check reads it again; the
 * reader drops a read whose rows did not change, so this costs no reload.
 */
const RACY_NS = 2_000_000_000n;

/**
 * A JSON session map. Galaxy writes it by truncating the file and writing it
 * again, so a read can see an empty or half-written file: that read fails as
 * `incomplete` and the last good map stays in use; the write's own file events
 * (or the reloader's retry) bring the complete file in.
 *
 * Two shapes, told apart per entry by the value:
 * - current: `{"<cookie>": {"host": "...", "port": 8080, "container_ids": [...], "container_interface": null}}`
 * - oldest: `{"<host>:<port>": "<cookie>"}`
 *
 * Keys cannot repeat in either shape once read (object keys; the last row of
 * a cookie wins), so a read after the first is answered as the changes
 * against the last answer, by lining the two up row by row (Galaxy rewrites
 * the file in the same order, so they are mostly the same text).
 */
export class JsonSessionMap implements FileMap {
  private racy = 0;
  /** The text of the last answer and its rows: a re-read of the same bytes is not parsed again. */
  private last: { text: string; read: MapRead } | undefined;

  constructor(readonly path: string) {}

  version(): string | undefined {
    let st;
    try {
      st = statSync(this.path, { bigint: true, throwIfNoEntry: false });
    } catch {
      return undefined;
    }
    if (st === undefined) return undefined;
    const id = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    const changed = st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs;
    const now = BigInt(Date.now()) * 1_000_000n;
    return now - changed < RACY_NS ? `${id}:racy${++this.racy}` : id;
  }

  read(whole: boolean): MapAnswer {
    const last = this.last;
    const read = this.parse();
    this.last = read;
    // The same bytes as the last answer: nothing changed (not even compared).
    if (!whole && last?.read === read.read) return { kind: 'changes', format: read.read.format, routing: 'cookie', removed: '', inserted: '', skipped: read.read.skipped };
    return changesSince(last?.read, read.read, whole);
  }

  /** The file's text and its rows; the last answer's when the bytes did not change. */
  private parse(): { text: string; read: MapRead } {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const failure = code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : 'unreadable';
      throw new SessionMapError(failure, this.path, `session map ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    if (this.last?.text === text) return this.last;
    if (text.trim() === '') {
      throw new SessionMapError('incomplete', this.path, `session map ${this.path} is empty (Galaxy may be writing it)`);
    }
    let data: unknown;
    try {
      data = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
    } catch (err) {
      throw new SessionMapError(
        'incomplete',
        this.path,
        `session map ${this.path} is not complete JSON (Galaxy may be writing it): ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      throw new SessionMapError('corrupt', this.path, `session map ${this.path} is JSON but not an object of sessions`);
    }
    return { text, read: toRows(data as Record<string, unknown>) };
  }

  close(): void {
    this.last = undefined;
  }
}

function toRows(data: Record<string, unknown>): MapRead {
  const entries: [unknown, unknown, unknown][] = [];
  const skipped = new SkipCounter();
  let oldest = 0;
  for (const [name, value] of Object.entries(data)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const { host, port } = value as { host?: unknown; port?: unknown };
      entries.push([name, host, port]);
    } else {
      // Oldest shape: the name is `host:port`, the value is the cookie.
      oldest++;
      if (typeof value !== 'string') {
        skipped.add('non-string key');
        continue;
      }
      const { host, port } = splitHostPort(name);
      entries.push([value, host, port]);
    }
  }
  const format = oldest === 0 ? 'json' : oldest === entries.length + skipped.total ? 'json host:port' : 'json mixed';
  let rows: string;
  if (oldest === 0) {
    rows = entries.map(([key, host, port]) => rowLine(key, host, port)).join(''); // object keys are unique
  } else {
    // In the oldest shape cookies are values, and values may repeat.
    const unique = new LastRowWins();
    for (const [key, host, port] of entries) unique.add(key, host, port);
    rows = unique.rows();
  }
  return { kind: 'whole', format, routing: 'cookie', rows, uniqueKeys: true, skipped: skipped.byReason };
}
