import type { AddressInfo } from 'node:net';
import { healthReport } from './admin/health.js';
import { listenOn } from './http/server.js';
import type { Logger } from './log.js';
import { ProxyMetrics } from './admin/metrics.js';
import { startMetricsServer, type MetricsServer } from './admin/metrics.js';
import { combineObservers, type ProxyObserver } from './observer.js';
import { MapReloader, type ReloadOutcome } from './session-map/reloader.js';
import type { ProxyOptions } from './cli/options.js';
import { removePidFile, writePidFile } from './admin/pid-file.js';
import { createGieProxy } from './http/server.js';
import { RouteTable } from './routing/route-table.js';
import { ReloadReporter } from './session-map/reload-report.js';
import { storeKindFor } from './session-map/stores.js';
import { CookieRouter } from './routing/cookie-router.js';
import { readFileSync } from 'node:fs';

/** A running proxy. */
export interface Daemon {
  /** Where it listens (the real port when 0 was asked for). */
  readonly address: AddressInfo;
  /** Where `/health` and `/metrics` are served (with `metricsPort` only). */
  readonly metricsAddress: AddressInfo | undefined;
  readonly table: RouteTable;
  readonly reloader: MapReloader;
  /** Re-reads the session map now and rebuilds the route table (SIGHUP). */
  reload(): Promise<ReloadOutcome>;
  /**
   * Stops accepting, closes WebSockets and idle connections, lets in-flight
   * requests finish for up to `graceMs`, then cuts what is left.
   * Resolves with `graceful: false` when something had to be cut.
   */
  close(graceMs?: number): Promise<{ graceful: boolean }>;
}

/**
 * The one place that wires the parts: session map → route table ← watcher,
 * proxy ← route table, metrics ← observer hooks. Resolves once listening
 * (and the pid file is written); rejects with ListenError or PidFileError.
 */
export async function startDaemon(options: ProxyOptions, log: Logger, extraObserver: ProxyObserver = {}): Promise<Daemon> {
  const startedAt = Date.now();
  const metrics = options.metricsPort === undefined ? undefined : new ProxyMetrics();
  const observer = metrics === undefined ? extraObserver : combineObservers(extraObserver, metrics.observer);
  const table = new RouteTable();
  const spec = options.sessionsPath;
  const report = new ReloadReporter(spec, log.child({ component: 'session-map' }), observer);
  const reloader = new MapReloader(spec, table, report, { workerThreshold: options.mapThreadFrom });
  await reloader.reload(true);
  const watcher = storeKindFor(spec).watch(spec, { pollIntervalMs: options.pollIntervalMs, debounceMs: options.reloadDebounceMs }, () => void reloader.reload());
  const router = new CookieRouter(options.cookieName, (key) => table.lookup(key));
  const proxy = createGieProxy({ options, router, log: log.child({ component: 'proxy' }), observer });
  const { server, tracker } = proxy;

  const stopMap = (): void => {
    watcher.close();
    reloader.close();
  };

  let address: AddressInfo;
  let metricsServer: MetricsServer | undefined;
  try {
    address = await listenOn(server, options.port, options.ip);
    if (metrics !== undefined) {
      metricsServer = await startMetricsServer(options.metricsIp, options.metricsPort ?? 0, {
        metrics,
        log: log.child({ component: 'metrics' }),
        health: () =>
          healthReport({
            version: VERSION,
            startedAt,
            sessions: table.size,
            mapPath: options.sessionsPath,
            lastLoadedAt: report.lastLoadedAt,
            lastFormat: report.lastFormat,
            lastError: report.lastError,
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
  server.on('error', (err) => log.error({ err }, 'server error'));
  log.info(
    {
      version: VERSION,
      address: address.address,
      port: address.port,
      sessions: options.sessionsPath,
      cookie: options.cookieName,
      routing: router.description,
      routes: table.size,
      watching: watcher.watching,
    },
    'proxy listening',
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
    reloader,
    reload: () => reloader.reload(true),
    close: (graceMs) => (closing ??= close(graceMs)),
  };
}

/** The package version, read from the package.json that sits beside `lib/` (and `src/`). */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
