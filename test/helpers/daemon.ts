import { startDaemon, type Daemon } from '../../src/daemon.js';
import { createLogger } from '../../src/log.js';
import { resolveOptions, type ProxyOptions } from '../../src/cli/options.js';
import { LogCapture } from './logs.js';

/** An in-process proxy on 127.0.0.1:0 with its log captured. */
export interface TestProxy {
  daemon: Daemon;
  port: number;
  logs: LogCapture;
  close: () => Promise<void>;
}

export async function startTestProxy(options: Partial<ProxyOptions> & { sessionsPath: string }): Promise<TestProxy> {
  const logs = new LogCapture();
  const resolved = resolveOptions({ ip: '127.0.0.1', port: 0, ...options });
  const log = createLogger({ verbose: resolved.verbose, maskParams: resolved.logMaskParams, destination: logs.stream });
  const daemon = await startDaemon(resolved, log);
  return { daemon, port: daemon.address.port, logs, close: async () => void (await daemon.close(100)) };
}
