import type { AddressInfo, Server } from 'node:net';
import { healthReport, type HealthInputs } from './admin/health.js';
import { listenOn } from './http/server.js';
import { listenOnSocket } from './http/unix-socket.js';
import type { Logger } from './log.js';
import { ProxyMetrics } from './admin/metrics.js';
import { startMetricsServer, type MetricsServer } from './admin/metrics.js';
import { combineObservers, type ProxyObserver } from './observer.js';
import { MapReloader, type ReloadOutcome } from './session-map/reloader.js';
import { formatFileMode, type ProxyOptions } from './options.js';
import { removePidFile, writePidFile } from './admin/pid-file.js';
import { createGieProxy, type GieProxy } from './http/server.js';
import { RouteTable } from './routing/route-table.js';
import { startActivityClock } from './routing/activity.js';
import { ReloadReporter } from './session-map/reload-report.js';
import { WorkerMapReader } from './session-map/reader.js';
import { storeKindFor, storeLabel } from './session-map/stores.js';
import { CookieRouter } from './routing/cookie-router.js';
import { EntryPointTable } from './routing/entry-point-table.js';
import { EntryPointRouter } from './routing/entry-point-router.js';
import { RouterSwitch, type Router } from './routing/router.js';
import type { ChangeWatch, MapRouting } from './session-map/store.js';
import { readFileSync } from 'node:fs';
import { BrowserPages, PAGES_LOG } from './pages/browser-pages.js';
import { loadPages } from './pages/templates.js';
import { RemovedMemory } from './routing/removed-memory.js';

/** A running proxy. */
export interface Daemon {
  /** Where it listens: the address and real port (when 0 was asked for), or the unix socket's path (`socketPath`). */
  readonly address: AddressInfo | string;
  /** Where `/health` and `/metrics` are served (with `metricsPort` only). */
  readonly metricsAddress: AddressInfo | undefined;
  /**
   * The routes in use, session key → container: for an embedder to inspect
   * (`size`, `lookup(key)`), never to change; the reloader replaces it.
   */
  readonly table: RouteTable;
  /** The entry points of an Interactive Tools map (inspection only, like `table`). */
  readonly entryPoints: EntryPointTable;
  /** Reads the map (on the reader thread); undefined in header mode (no map). For inspection only. */
  readonly reloader: MapReloader | undefined;
  /** Re-reads the session map now and rebuilds the route table (SIGHUP). */
  reload(): Promise<ReloadOutcome>;
  /**
   * Stops accepting, closes WebSockets and idle connections, lets in-flight
   * requests finish for up to `graceMs`, then cuts what is left.
   * Resolves with `graceful: false` when something had to be cut.
   */
  close(graceMs?: number): Promise<{ graceful: boolean }>;
}

/** What the process the daemon runs in offers it (the CLI's part: only it touches the process). */
export interface DaemonHooks {
  /**
   * A full garbage collection of the calling thread (V8's `gc`). Called once,
   * after the start-up read and before listening, when a pause costs no
   * request: the start-up read of a large map leaves tens of MiB of garbage.
   */
  readonly collectGarbage?: (() => void) | undefined;
}

/**
 * The one place that wires the parts: session map → route table ← watcher,
 * proxy ← route table, metrics ← observer hooks. Resolves once listening
 * (and the pid file is written); rejects with ListenError or PidFileError.
 */
export async function startDaemon(options: ProxyOptions, log: Logger, extraObserver: ProxyObserver = {}, hooks: DaemonHooks = {}): Promise<Daemon> {
  const startedAt = Date.now();
  const metrics = options.metricsPort === undefined ? undefined : new ProxyMetrics();
  const observer = metrics === undefined ? extraObserver : combineObservers(extraObserver, metrics.observer);
  const table = new RouteTable();
  const entryPoints = new EntryPointTable();
  const itRouter = entryPointRouter(options, entryPoints);
  const cookieRouter = new CookieRouter(options.cookieName, (key) => table.lookup(key));
  const removed = watchRemovals(table, entryPoints);
  const spec = options.sessionsPath;
  let map: FollowedMap | undefined;
  if (spec !== undefined) {
    map = await followMap(spec, options, { log, observer, table, entryPoints, cookieRouter, itRouter });
    hooks.collectGarbage?.();
    metrics?.watchStore(map.storeStatus);
  } else if (options.headerModeAllow === undefined) {
    log.warn({ forwardIP: options.forwardIP, forwardPort: options.forwardPort }, DAEMON_LOG.openRelay);
  }
  const router = map?.router ?? itRouter;
  const reloader = map?.reloader;
  const pages = browserPages(options, log, {
    removed,
    reread: reloader === undefined ? undefined : () => reloader.reload(),
    cookieMode: () => router instanceof RouterSwitch && router.current === cookieRouter,
  });
  const proxy = createGieProxy({ options, router, log: log.child({ component: 'proxy' }), observer, pages });
  const routeSources = { sessions: table, entryPoints, webSockets: proxy.webSockets };
  const stopActivity = startActivityClock(proxy.webSockets);
  metrics?.watchRoutes(routeSources, options.idleReportAfterMs);
  const stopMap = (): void => {
    map?.close();
    stopActivity();
  };

  let address: AddressInfo | string;
  let metricsServer: MetricsServer | undefined;
  try {
    address = await listen(proxy.server, options, log);
    if (metrics !== undefined) {
      metricsServer = await startMetricsServer(options.metricsIp, options.metricsPort ?? 0, {
        metrics,
        routes: routeSources,
        log: log.child({ component: 'metrics' }),
        health: () => healthReport({ version: VERSION, startedAt, ...(map?.health() ?? NO_MAP) }),
      });
    }
    // Written once listening, so a second copy that cannot bind the port
    // never overwrites (and then removes) the running proxy's file.
    if (options.pidFile !== undefined) writePidFile(options.pidFile, process.pid);
  } catch (err) {
    stopMap();
    proxy.server.close();
    metricsServer?.close();
    throw err;
  }
  // From here on a server error is not fatal to the process.
  proxy.server.on('error', (err) => log.error({ err }, DAEMON_LOG.serverError));
  logListening(log, options, address, router, map);

  let closing: Promise<{ graceful: boolean }> | undefined;
  const close = async (graceMs = options.shutdownGraceMs): Promise<{ graceful: boolean }> => {
    stopMap();
    metricsServer?.close();
    const outcome = await shutDown(proxy, graceMs);
    if (options.pidFile !== undefined) removePidFile(options.pidFile, process.pid);
    return outcome;
  };
  return {
    address,
    metricsAddress: metricsServer?.address,
    table,
    entryPoints,
    reloader,
    reload: () => reloader?.reload(true) ?? Promise.resolve('unchanged'),
    close: (graceMs) => (closing ??= close(graceMs)),
  };
}

/** The Interactive Tools router, over the entry points the map fills (or the headers, in header mode). */
function entryPointRouter(options: ProxyOptions, entryPoints: EntryPointTable): EntryPointRouter {
  return new EntryPointRouter(
    {
      pathPrefix: options.pathPrefix,
      forwardIP: options.forwardIP,
      forwardPort: options.forwardPort,
      headerMode: options.sessionsPath === undefined,
      allow: options.headerModeAllow,
      // Requests and refusals are logged (at debug level) with --verbose only.
      logPaths: options.verbose,
    },
    (key) => entryPoints.lookup(key),
  );
}

/** /health without a map (header mode). */
const NO_MAP: Omit<HealthInputs, 'version' | 'startedAt'> = { sessions: 0, mapPath: '', lastLoadedAt: undefined, lastFormat: undefined, lastError: undefined };

/** A map being followed: its reloader, its watch, the router its table chooses. */
interface FollowedMap {
  readonly reloader: MapReloader;
  readonly router: RouterSwitch;
  readonly watching: boolean;
  /** What the store says of its connection, for /health and /metrics (PostgreSQL). */
  readonly storeStatus: () => object | undefined;
  /** The map's part of /health. */
  health(): Omit<HealthInputs, 'version' | 'startedAt'>;
  close(): void;
}

/**
 * Starts following the map: the reader thread, the store's change watch,
 * the first read (resolves once it is in the tables, or failed and logged).
 */
async function followMap(
  spec: string,
  options: ProxyOptions,
  parts: { log: Logger; observer: ProxyObserver; table: RouteTable; entryPoints: EntryPointTable; cookieRouter: Router; itRouter: Router },
): Promise<FollowedMap> {
  const log = parts.log.child({ component: 'session-map' });
  // A database URL is named without its password in logs and /health.
  const label = storeLabel(spec);
  const report = new ReloadReporter(label, log, parts.observer);
  const follow = followMapRouting(options, parts.cookieRouter, parts.itRouter);
  // The watch is made after the reloader it calls; until then nothing is synced or failed.
  const later: { watch?: ChangeWatch } = {};
  const reloader = new MapReloader(spec, parts.table, report, {
    // The reader thread starts with the daemon and reads the map for its life (--check reads inline).
    reader: new WorkerMapReader(spec, (err) => report.threadFailed(err)),
    onSynced: () => later.watch?.synced?.(),
    onFailed: (failure) => later.watch?.failed?.(failure),
    entryPoints: parts.entryPoints,
    onRouting: follow.onRouting,
  });
  // The watch first: the reader thread reads over a connection of its own,
  // and a change committed between its first read and the watch's LISTEN
  // would otherwise go unheard (with --poll-interval 0, for good). What the
  // watch hears before the first read is in that read.
  let firstReadAsked = false;
  const watch = storeKindFor(spec).watch(spec, { pollIntervalMs: options.pollIntervalMs, debounceMs: options.reloadDebounceMs, log }, () => void (firstReadAsked && reloader.reload()));
  later.watch = watch;
  await watch.ready?.();
  firstReadAsked = true;
  await reloader.reload(true);
  return {
    reloader,
    router: follow.router,
    watching: watch.watching,
    storeStatus: () => watch.status?.(),
    health: () => ({
      sessions: reloader.size,
      mapPath: label,
      lastLoadedAt: report.lastLoadedAt,
      lastFormat: report.lastFormat,
      lastError: report.lastError,
      store: watch.status?.(),
    }),
    close: () => {
      watch.close();
      reloader.close();
    },
  };
}

/** The start-up line admins and tests wait for. */
function logListening(log: Logger, options: ProxyOptions, address: AddressInfo | string, router: Router, map: FollowedMap | undefined): void {
  log.info(
    {
      version: VERSION,
      ...(typeof address === 'string' ? { socket: address, socketMode: formatFileMode(options.socketMode) } : { address: address.address, port: address.port }),
      sessions: options.sessionsPath === undefined ? undefined : storeLabel(options.sessionsPath),
      cookie: options.cookieName,
      routing: router.description,
      pathPrefix: options.pathPrefix,
      headerModeAllow: options.headerModeAllow?.items,
      routes: map?.reloader.size ?? 0,
      watching: map?.watching ?? false,
    },
    DAEMON_LOG.listening,
  );
}

/**
 * Stops accepting, closes WebSockets and idle connections, waits up to
 * `graceMs` for in-flight requests, then cuts what is left.
 */
async function shutDown(proxy: GieProxy, graceMs: number): Promise<{ graceful: boolean }> {
  const { server, tracker } = proxy;
  server.close();
  tracker.destroyWebSockets();
  // Connections become idle as their last response ends: drop them then.
  tracker.onRequestDone = () => setImmediate(() => server.closeIdleConnections());
  server.closeIdleConnections();
  let timer: NodeJS.Timeout | undefined;
  const graceful = await Promise.race([
    tracker.whenNoRequests().then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    }),
  ]);
  clearTimeout(timer);
  server.closeAllConnections();
  proxy.closeUpstreams();
  return { graceful };
}

/**
 * Listens where the options say: the unix socket `socketPath` (a stale one
 * replaced, logged) or `ip:port`. Rejects with ListenError.
 */
async function listen(server: Server, options: ProxyOptions, log: Logger): Promise<AddressInfo | string> {
  if (options.socketPath === undefined) return listenOn(server, options.port, options.ip);
  const { replacedStale } = await listenOnSocket(server, options.socketPath, options.socketMode);
  if (replacedStale) log.info({ socket: options.socketPath }, DAEMON_LOG.staleSocketReplaced);
  return options.socketPath;
}

/** Log messages of the daemon that admins (and tests) match on. */
export const DAEMON_LOG = Object.freeze({
  /** The start-up line: address and port, or socket and its mode; map, routing. */
  listening: 'proxy listening',
  /** A socket file nobody listened on (left by a crash) was at the --socket path and was removed. */
  staleSocketReplaced: 'stale socket file replaced (no process was listening on it)',
  serverError: 'server error',
  openRelay:
    'header mode without --header-mode-allow: any client that reaches this port can have the proxy connect to any host and port it names in x-interactive-tool-host/-port (an open relay); keep it on a private network or give an allow-list',
});

/** True when Interactive Tools routing is to be expected before the map says so: the gx-it-proxy command, or its flags. */
function expectsEntryPoints(options: ProxyOptions): boolean {
  return options.interactiveTools || options.pathPrefix !== undefined || options.forwardIP !== undefined || options.forwardPort !== undefined;
}

/**
 * The routing follows the table the map holds: `gxitproxy` routes entry
 * points, `gxproxy2`, `gxproxy` and the JSON maps route session cookies.
 * Until the map says what it holds, the command and the Interactive Tools
 * flags say what to expect; `onRouting` (the reloader's) switches the router
 * when a read says it, so a request only reads the switch's field.
 */
function followMapRouting(options: ProxyOptions, cookies: Router, entryPoints: Router): { router: RouterSwitch; onRouting: (routing: MapRouting) => void } {
  const routerFor = (routing: MapRouting): Router => (routing === 'entry-point' ? entryPoints : cookies);
  const router = new RouterSwitch(routerFor(expectsEntryPoints(options) ? 'entry-point' : 'cookie'));
  return { router, onRouting: (routing) => (router.current = routerFor(routing)) };
}

/** Remembers (as keyed hashes) the sessions and entry points the map removes, for the "stopped" page. */
function watchRemovals(table: RouteTable, entryPoints: EntryPointTable): RemovedMemory {
  const removed = new RemovedMemory();
  table.onRemoved = (key) => removed.remember('session', key);
  entryPoints.onRemoved = (entry) => removed.remember('entry-point', entry.key, entry.token);
  return removed;
}

/** The browser pages, with the admin's templates checked once (one warning for all that are unusable). */
function browserPages(
  options: ProxyOptions,
  log: Logger,
  wiring: { removed: RemovedMemory; reread: (() => Promise<unknown>) | undefined; cookieMode: () => boolean },
): BrowserPages {
  const { pages, problems } = loadPages(options.errorPagesDir);
  if (problems.length > 0) log.warn({ dir: options.errorPagesDir, problems }, PAGES_LOG.templatesUnusable);
  return new BrowserPages({
    pages,
    galaxyUrl: options.galaxyUrl,
    pathPrefix: options.pathPrefix,
    startingTimeoutMs: options.startingPageTimeoutMs,
    ...wiring,
  });
}

/** The package version, read from the package.json that sits beside `lib/` (and `src/`). */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
