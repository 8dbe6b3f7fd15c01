import type { SessionMapError } from '../session-map/store.js';

/** What the health report is made from, read from the running daemon at request time. */
export interface HealthInputs {
  readonly version: string;
  /** When the proxy started (ms since epoch). */
  readonly startedAt: number;
  /** Sessions in the route table in use. */
  readonly sessions: number;
  /** Absolute path of the session map. */
  readonly mapPath: string;
  /** When the map was last read successfully (ms since epoch), if ever. */
  readonly lastLoadedAt: number | undefined;
  /** Format of that read, e.g. `sqlite gxproxy2`. */
  readonly lastFormat: string | undefined;
  /** The most recent failed read, cleared by a successful one. */
  readonly lastError: SessionMapError | undefined;
  /** The store's own state (a database connection), when it has one. */
  readonly store?: object | undefined;
}

/** The JSON body of `GET /health`. */
export interface HealthBody {
  /** `ok` once a map has been loaded; `no-map` until then (Galaxy has not written it yet, or it cannot be read). */
  readonly status: 'ok' | 'no-map';
  readonly version: string;
  readonly uptimeSeconds: number;
  readonly sessions: number;
  readonly sessionMap: {
    readonly path: string;
    readonly format: string | null;
    readonly lastReloadAt: string | null;
    readonly lastReloadAgeSeconds: number | null;
    readonly lastError: { readonly reason: string; readonly message: string } | null;
    /** A database store's connection: connected, notifications, reconnects… (absent for files). */
    readonly store?: object;
  };
}

const seconds = (ms: number): number => Math.round(ms) / 1000;

/**
 * The health report: 200 once a session map has been loaded (a later failed
 * read keeps the last good map in use, so the proxy still routes and stays
 * healthy; the failure is reported in `lastError`), 503 while none ever was.
 */
export function healthReport(inputs: HealthInputs, now = Date.now()): { status: 200 | 503; body: HealthBody } {
  const loaded = inputs.lastLoadedAt !== undefined;
  const body: HealthBody = {
    status: loaded ? 'ok' : 'no-map',
    version: inputs.version,
    uptimeSeconds: seconds(now - inputs.startedAt),
    sessions: inputs.sessions,
    sessionMap: {
      path: inputs.mapPath,
      format: inputs.lastFormat ?? null,
      lastReloadAt: loaded ? new Date(inputs.lastLoadedAt).toISOString() : null,
      lastReloadAgeSeconds: loaded ? seconds(now - inputs.lastLoadedAt) : null,
      lastError: inputs.lastError === undefined ? null : { reason: inputs.lastError.failure, message: inputs.lastError.message },
      ...(inputs.store === undefined ? {} : { store: inputs.store }),
    },
  };
  return { status: loaded ? 200 : 503, body };
}
