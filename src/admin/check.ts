import net from 'node:net';
import { SessionMapError, type MapRead, type MapRouting } from '../session-map/store.js';
import { checkRow, DEFAULT_KEY_TYPE, forEachLine, parseRoutableEntryPoint, SkipCounter } from '../session-map/rows.js';
import type { EntryPointRow } from '../routing/entry-point-table.js';
import type { Target } from '../routing/route-table.js';
import { storeKindFor, storeLabel } from '../session-map/stores.js';
import { sessionTag } from '../log.js';

/** How `--check` probes containers. */
interface CheckOptions {
  /** How many sessions (the most recently added) get a TCP connect to their container. */
  readonly limit: number;
  /** How long one connect may take before the container counts as not answering. */
  readonly connectTimeoutMs: number;
}

/**
 * One probed session, named as log lines name it: a cookie session by its
 * sessionTag, an entry point by its key and its token's tag; never by a
 * cookie value or a token.
 */
interface ContainerProbe {
  readonly session: string;
  readonly target: string;
  readonly answers: boolean;
  /** `answers in N ms`, or why not (an error code, `no answer within N ms`). */
  readonly detail: string;
}

/** What `--check` found. `readable` decides the exit status. */
interface CheckReport {
  readonly path: string;
  readonly readable: boolean;
  /** Why the map could not be read (when not `readable`). */
  readonly error?: SessionMapError;
  readonly format?: string;
  /** What the map routes by (entry points are listed by key and token tag). */
  readonly routing?: MapRouting;
  readonly sessions: number;
  readonly skipped: [string, number][];
  readonly probes: ContainerProbe[];
  readonly connectTimeoutMs: number;
}

/**
 * Reads the session map once, as the proxy would, and tries a TCP connect to
 * the containers of the `limit` most recently added sessions (all at once,
 * each bounded by `connectTimeoutMs`).
 */
export async function checkSessionMap(spec: string, options: CheckOptions): Promise<CheckReport> {
  // A database URL is reported by its label: never the password.
  const path = storeLabel(spec);
  const store = storeKindFor(spec).open(spec);
  let snapshot;
  try {
    const answer = await store.read(true);
    if (answer.kind !== 'whole') throw new Error('a whole read answered with changes');
    snapshot = toSnapshot(answer);
  } catch (err) {
    const error = err instanceof SessionMapError ? err : new SessionMapError('unreadable', path, `session map ${path}: ${String(err)}`, { cause: err });
    return { path, readable: false, error, sessions: 0, skipped: [], probes: [], connectTimeoutMs: options.connectTimeoutMs };
  } finally {
    store.close();
  }
  const newest = options.limit > 0 ? [...snapshot.routes].slice(-options.limit).reverse() : [];
  const name = snapshot.routing === 'entry-point' ? (label: string) => label : sessionTag;
  const probes = await Promise.all(newest.map(([key, target]) => probe(name(key), target, options.connectTimeoutMs)));
  return {
    path,
    readable: true,
    format: snapshot.format,
    routing: snapshot.routing,
    sessions: snapshot.routes.size,
    skipped: [...snapshot.skipped],
    probes,
    connectTimeoutMs: options.connectTimeoutMs,
  };
}

/** One complete, validated read: cookie value → container. */
export interface SessionMapSnapshot {
  readonly routes: Map<string, Target>;
  /** Human-readable description of what was read, e.g. `sqlite gxproxy2`. */
  readonly format: string;
  /** What the map routes by. */
  readonly routing: MapRouting;
  /** Entries that could not be used, by reason; empty when all loaded. */
  readonly skipped: ReadonlyMap<string, number>;
}

/**
 * Validates a whole read at once (for `--check` and small uses): later rows
 * win. Cookie maps are keyed by the cookie value; entry points by
 * entryPointLabel (the key and the token's tag, never the token).
 */
export function toSnapshot(read: MapRead): SessionMapSnapshot {
  const routes = new Map<string, Target>();
  const skipped = new SkipCounter(read.skipped);
  forEachLine(read.rows, 0, Infinity, (line) => {
    const checked = checkRow(read.routing, line);
    if ('problem' in checked) {
      skipped.add(checked.problem);
    } else if (read.routing === 'entry-point') {
      const row = parseRoutableEntryPoint(`${checked.id}\t${checked.value}`);
      routes.set(entryPointLabel(row), { host: row.host, port: row.port });
    } else {
      const tab = checked.value.indexOf('\t');
      routes.set(checked.id, { host: checked.value.slice(0, tab), port: Number(checked.value.slice(tab + 1)) });
    }
  });
  return { routes, format: read.format, routing: read.routing, skipped: skipped.byReason };
}

/** How `--check` names an entry point: its key and the token's tag (as log lines tag it), the key type when unusual. */
function entryPointLabel(row: Pick<EntryPointRow, 'key' | 'keyType' | 'token'>): string {
  const type = row.keyType === DEFAULT_KEY_TYPE ? '' : ` (${row.keyType})`;
  return `${row.key}${type} token ${sessionTag(row.token)}`;
}

function probe(session: string, { host, port }: Target, timeoutMs: number): Promise<ContainerProbe> {
  const hostname = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const target = hostname.includes(':') ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port });
    const done = (answers: boolean, detail: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ session, target, answers, detail });
    };
    const timer = setTimeout(() => done(false, `no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done(true, `answers in ${Math.round(performance.now() - started)} ms`));
    socket.once('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
  });
}

/** The report as the text `--check` prints: one `label  value` line per fact, containers indented. */
export function formatCheckReport(report: CheckReport): string {
  const lines = [`session map  ${report.path}`];
  if (!report.readable) {
    const error = report.error as SessionMapError;
    lines.push(`result       NOT READABLE (${error.failure}): ${error.message}`);
    return `${lines.join('\n')}\n`;
  }
  lines.push(`format       ${report.format ?? ''}`);
  lines.push(report.routing === 'entry-point' ? `entry points ${report.sessions} routable` : `sessions     ${report.sessions} routable`);
  const skippedCount = report.skipped.reduce((sum, [, n]) => sum + n, 0);
  const reasons = report.skipped.map(([reason, n]) => `${reason}: ${n}`).join(', ');
  lines.push(`skipped      ${skippedCount}${skippedCount > 0 ? ` (${reasons})` : ''}`);
  if (report.probes.length > 0) {
    const answering = report.probes.filter((p) => p.answers).length;
    lines.push(
      `containers   ${answering} of the ${report.probes.length} most recently added answer a TCP connect (time-out ${report.connectTimeoutMs} ms):`,
    );
    const width = Math.max(...report.probes.map((p) => p.target.length));
    const nameWidth = Math.max(9, ...report.probes.map((p) => p.session.length));
    for (const p of report.probes) {
      lines.push(`  ${p.session.padEnd(nameWidth)}  ${p.target.padEnd(width)}  ${p.answers ? p.detail : `NO ANSWER: ${p.detail}`}`);
    }
  }
  lines.push('result       readable');
  return `${lines.join('\n')}\n`;
}
