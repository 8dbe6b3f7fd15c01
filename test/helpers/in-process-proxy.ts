import { join } from 'node:path';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { createLogger } from '../../src/log.js';
import { resolveOptions, type ProxyOptions } from '../../src/options.js';
import type { ProxyObserver } from '../../src/observer.js';
import { GalaxySqliteWriter, tempDir } from './galaxy-map.js';
import { LogCapture } from './logs.js';

/** Whatever registers clean-ups: a node:test TestContext, or a script's own list. */
export interface AfterHook {
  after(fn: () => unknown): void;
}

/** An in-process proxy on 127.0.0.1:0 with its log captured. */
export interface InProcessProxy {
  daemon: Daemon;
  /** The TCP port; 0 when it listens on a unix socket (`socket`). */
  port: number;
  /** The unix socket it listens on, with `socketPath`. */
  socket: string | undefined;
  logs: LogCapture;
  /** Closes the proxy (100 ms grace); also done in t.after, and safe to call twice. */
  close: () => Promise<void>;
}

/** An in-process proxy reading a map this helper wrote. */
export interface MappedInProcessProxy extends InProcessProxy {
  /** The map, written with Galaxy's statements; add or remove sessions through it. */
  map: GalaxySqliteWriter;
  /** The temp dir that holds the map. */
  dir: string;
}

/** ProxyOptions for a test proxy, plus an observer passed to startDaemon. */
export type InProcessProxyOptions = Partial<ProxyOptions> & { observer?: ProxyObserver };

/** Options for a proxy on a map the helper writes (everything but the map's path). */
export type MappedProxyOptions = Omit<InProcessProxyOptions, 'sessionsPath'>;

/**
 * The one way to start a proxy inside the test process: startDaemon on
 * 127.0.0.1:0 with `options` (resolved as the CLI would) and its log lines
 * captured; closed when the test ends.
 *
 * With `sessionsPath` it reads that map. Without it, `sessions` (session key →
 * port on 127.0.0.1, none by default) are written with Galaxy's statements to
 * a fresh SQLite map in a temp dir, removed when the test ends.
 */
export async function startInProcessProxy(t: AfterHook, options: InProcessProxyOptions & { sessionsPath: string }): Promise<InProcessProxy>;
export async function startInProcessProxy(
  t: AfterHook,
  options?: MappedProxyOptions & { sessionsPath?: undefined; sessions?: Record<string, number> },
): Promise<MappedInProcessProxy>;
export async function startInProcessProxy(
  t: AfterHook,
  { sessions = {}, observer, ...options }: InProcessProxyOptions & { sessions?: Record<string, number> } = {},
): Promise<InProcessProxy | MappedInProcessProxy> {
  let daemon: Daemon | undefined = undefined;
  let removeDir: (() => void) | undefined;
  const close = async (): Promise<void> => void (await daemon?.close(100));
  // One hook, so the proxy is closed before its map's dir is removed.
  t.after(async () => {
    await close();
    removeDir?.();
  });
  let mapped: { map: GalaxySqliteWriter; dir: string } | undefined;
  if (options.sessionsPath === undefined) {
    const tmp = tempDir();
    removeDir = tmp.remove;
    const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
    for (const [key, port] of Object.entries(sessions)) map.addSession(key, '127.0.0.1', port);
    mapped = { map, dir: tmp.dir };
  }
  const logs = new LogCapture();
  const resolved = resolveOptions({ ip: '127.0.0.1', port: 0, ...options, sessionsPath: options.sessionsPath ?? mapped!.map.path });
  const log = createLogger({ verbose: resolved.verbose, maskParams: resolved.logMaskParams, destination: logs.stream });
  daemon = await startDaemon(resolved, log, observer);
  const { address } = daemon;
  const where = typeof address === 'string' ? { port: 0, socket: address } : { port: address.port, socket: undefined };
  return { daemon, ...where, logs, close, ...mapped };
}
