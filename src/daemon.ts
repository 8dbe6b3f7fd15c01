import type { AddressInfo, Server } from 'node:net';
import { healthReport } from './admin/health.js';
import { listenOn } from './http/server.js';
import { listenOnSocket } from './http/unix-socket.js';
import type { Logger } from './log.js';
import { ProxyMetrics } from './admin/metrics.js';
import { startMetricsServer, type MetricsServer } from './admin/metrics.js';
import { combineObservers, type ProxyObserver } from './observer.js';
import { MapReloader, type ReloadOutcome } from './session-map/reloader.js';
import { formatFileMode, type ProxyOptions } from './options.js';
import { removePidFile, writePidFile } from './admin/pid-file.js';
import { createGieProxy } from './http/server.js';
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
  const spec = options.sessionsPath;
  const itRouter = new EntryPointRouter(
    {
      pathPrefix: options.pathPrefix,
      forwardIP: options.forwardIP,
      forwardPort: options.forwardPort,
      headerMode: spec === undefined,
      allow: options.headerModeAllow,
      // Requests and refusals are logged (at debug level) with --verbose only.
      logPaths: options.verbose,
    },
    (key) => entryPoints.lookup(key),
  );
  let reloader: MapReloader | undefined;
  let report: ReloadReporter | undefined;
  let watcher: ChangeWatch | undefined;
  let router: Router = itRouter;
  const cookieRouter = new CookieRouter(options.cookieName, (key) => table.lookup(key));
  const removed = watchRemovals(table, entryPoints);
  if (spec !== undefined) {
    // A database URL is named without its password in logs and /health.
    const label = storeLabel(spec);
    const storeKind = storeKindFor(spec);
    report = new ReloadReporter(label, log.child({ component: 'session-map' }), observer);
    const follow = followMapRouting(options, cookieRouter, itRouter);
    router = follow.router;
    const mapReport = report;
    const mapReloader = new MapReloader(spec, table, report, {
      // The reader thread starts with the daemon and reads the map for its life (--check reads inline).
      reader: new WorkerMapReader(spec, (err) => mapReport.threadFailed(err)),
      onSynced: () => watcher?.synced?.(),
      onFailed: (failure) => watcher?.failed?.(failure),
      entryPoints,
      onRouting: follow.onRouting,
    });
    reloader = mapReloader;
    // The watch first: the reader thread reads over a connection of its own,
    // and a change committed between its first read and the watch's LISTEN
    // would otherwise go unheard (with --poll-interval 0, for good). What the
    // watch hears before the first read is in that read.
    let firstReadAsked = false;
    const mapWatcher = storeKind.watch(
      spec,
      { pollIntervalMs: options.pollIntervalMs, debounceMs: options.reloadDebounceMs, log: log.child({ component: 'session-map' }) },
      () => void (firstReadAsked && mapReloader.reload()),
    );
    watcher = mapWatcher;
    await mapWatcher.ready?.();
    firstReadAsked = true;
    await mapReloader.reload(true);
    hooks.collectGarbage?.();
    metrics?.watchStore(() => mapWatcher.status?.());
  } else if (options.headerModeAllow === undefined) {
    log.warn({ forwardIP: options.forwardIP, forwardPort: options.forwardPort }, DAEMON_LOG.openRelay);
  }
  const readMap = reloader;
  const pages = browserPages(options, log, {
    removed,
    reread: readMap === undefined ? undefined : () => readMap.reload(),
    cookieMode: () => router instanceof RouterSwitch && router.current === cookieRouter,
  });
  const proxy = createGieProxy({ options, router, log: log.child({ component: 'proxy' }), observer, pages });
  const { server, tracker } = proxy;
  const routeSources = { sessions: table, entryPoints, webSockets: proxy.webSockets };
  const stopActivity = startActivityClock(proxy.webSockets);
  metrics?.watchRoutes(routeSources, options.idleReportAfterMs);

  const stopMap = (): void => {
    watcher?.close();
    reloader?.close();
    stopActivity();
  };

  let address: AddressInfo | string;
  let metricsServer: MetricsServer | undefined;
  try {
    address = await listen(server, options, log);
    if (metrics !== undefined) {
      metricsServer = await startMetricsServer(options.metricsIp, options.metricsPort ?? 0, {
        metrics,
        routes: routeSources,
        log: log.child({ component: 'metrics' }),
        health: () =>
          healthReport({
            version: VERSION,
            startedAt,
            sessions: reloader?.size ?? 0,
            mapPath: spec === undefined ? '' : storeLabel(spec),
            lastLoadedAt: report?.lastLoadedAt,
            lastFormat: report?.lastFormat,
            lastError: report?.lastError,
            store: watcher?.status?.(),
          }),
      });
    }
    // Written once listening, so a second copy that cannot bind the port
    // never overwrites (and then removes) the running proxy's file.
    if (options.pidFile !== undefined) writePidFile(options.pidFile, process.pid);
  } catch (err) {
    stopMap();
    server.close();
    metricsServer?.close();
    throw err;
  }
  // From here on a server error is not fatal to the process.
  server.on('error', (err) => log.error({ err }, DAEMON_LOG.serverError));
  log.info(
    {
      version: VERSION,
      ...(typeof address === 'string' ? { socket: address, socketMode: formatFileMode(options.socketMode) } : { address: address.address, port: address.port }),
      sessions: spec === undefined ? undefined : storeLabel(spec),
      cookie: options.cookieName,
      routing: router.description,
      pathPrefix: options.pathPrefix,
      headerModeAllow: options.headerModeAllow?.items,
      routes: reloader?.size ?? 0,
      watching: watcher?.watching ?? false,
    },
    DAEMON_LOG.listening,
  );

  let closing: Promise<{ graceful: boolean }> | undefined;
  async function close(graceMs = options.shutdownGraceMs): Promise<{ graceful: boolean }> {
    stopMap();
    server.close();
    metricsServer?.close();
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
    if (options.pidFile !== undefined) removePidFile(options.pidFile, process.pid);
    return { graceful };
  }

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
