import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { ListenError } from './errors.js';
import type { Logger } from './log.js';
import type { ProxyObserver } from './observer.js';
import { MapReloader, type ReloadOutcome } from './map-reloader.js';
import type { ProxyOptions } from './options.js';
import { createGieProxy } from './proxy.js';
import { RouteTable } from './route-table.js';
import { openSessionMap } from './session-map.js';
import { VERSION } from './version.js';
import { MapWatcher } from './watcher.js';

/** A running proxy. */
export interface Daemon {
  /** Where it listens (the real port when 0 was asked for). */
  readonly address: AddressInfo;
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
 * proxy ← route table. Resolves once listening; rejects with ListenError.
 */
export async function startDaemon(options: ProxyOptions, log: Logger, observer: ProxyObserver = {}): Promise<Daemon> {
  const table = new RouteTable();
  const source = openSessionMap(options.sessionsPath);
  const reloader = new MapReloader(source, table, log.child({ component: 'session-map' }), observer, {
    workerThreshold: options.mapThreadFrom,
  });
  await reloader.reload(true);
  const watcher = new MapWatcher(
    options.sessionsPath,
    { pollIntervalMs: options.pollIntervalMs, debounceMs: options.reloadDebounceMs },
    () => void reloader.reload(),
  );
  const proxy = createGieProxy({ options, lookup: (key) => table.lookup(key), log: log.child({ component: 'proxy' }), observer });
  const { server, tracker } = proxy;

  const stopMap = (): void => {
    watcher.close();
    reloader.close();
    source.close();
  };

  try {
    server.listen(options.port, options.ip);
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err))]);
  } catch (err) {
    stopMap();
    server.close();
    throw new ListenError(`${options.ip}:${options.port}`, { cause: err as NodeJS.ErrnoException });
  }
  // From here on a server error is not fatal to the process.
  server.on('error', (err) => log.error({ err }, 'server error'));
  const address = server.address() as AddressInfo;
  log.info(
    {
      version: VERSION,
      address: address.address,
      port: address.port,
      sessions: options.sessionsPath,
      cookie: options.cookieName,
      routes: table.size,
      watching: watcher.watching,
    },
    'proxy listening',
  );

  let closing: Promise<{ graceful: boolean }> | undefined;
  async function close(graceMs = options.shutdownGraceMs): Promise<{ graceful: boolean }> {
    stopMap();
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

  return {
    address,
    table,
    reloader,
    reload: () => reloader.reload(true),
    close: (graceMs) => (closing ??= close(graceMs)),
  };
}
