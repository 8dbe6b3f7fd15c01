import http from 'node:http';
import { MAIN_JS, spawnProxy, type ProxyProcess, type SpawnOptions } from './spawned-proxy.js';
import { request, type Reply } from './client.js';
import { freePort } from './ports.js';
import { runBounded, type RunResult } from './processes.js';
import { waitUntil } from './wait.js';

/** A spawned lib/main.js reading a PostgreSQL map, with its /health listener. */
export interface PgProxy {
  proc: ProxyProcess;
  pid: number;
  port: number;
  metricsPort: number;
  /** GET /health, parsed. */
  health(): Promise<{ status: number; body: HealthBody }>;
  /** Resolves once /health reports `count` sessions. */
  sessions(count: number, timeoutMs?: number): Promise<void>;
}

export interface HealthBody {
  status: string;
  sessions: number;
  sessionMap: {
    path: string;
    lastError: { reason: string; message: string } | null;
    store?: { connected: boolean; notifications: number; reconnects: number; lastSyncAt: string | null; lastSyncAgeSeconds: number | null; changeDetection: string | null;
      problem?: { reason: string; message: string } | null;
    };
  };
}

/** Spawns the proxy on free loopback ports with `--sessions url` (and `options.env`, say); killed in t.after. */
export async function startPgProxy(t: { after: (fn: () => unknown) => void }, url: string, args: string[] = [], options: SpawnOptions = {}): Promise<PgProxy> {
  const port = await freePort();
  const metricsPort = await freePort();
  const proc = spawnProxy(['--ip', '127.0.0.1', '--port', String(port), '--sessions', url, '--metrics-port', String(metricsPort), '--metrics-ip', '127.0.0.1', ...args], options);
  t.after(() => proc.kill());
  await proc.started(15_000);
  const health = async (): Promise<{ status: number; body: HealthBody }> => {
    const reply = await request(metricsPort, { path: '/health' });
    return { status: reply.status, body: JSON.parse(reply.body) as HealthBody };
  };
  return {
    proc,
    pid: proc.child.pid ?? 0,
    port,
    metricsPort,
    health,
    sessions: async (count, timeoutMs = 30_000) => {
      await waitUntil(`${count} sessions in /health`, async () => (await health()).body.sessions === count || undefined, { timeoutMs, everyMs: 20 });
    },
  };
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** The Host of an entry point under Galaxy's Interactive Tools domain: `<key>-<token>.<domain>`. */
export function entryPointHost(key: string, token: string): string {
  return `${key}-${token}.interactivetool.galaxy.example.org`;
}

/** A request for the entry point `key` through the proxy, routed by its Host. */
export function requestEntryPoint(port: number, key: string, token: string, path = '/'): Promise<Reply> {
  return request(port, { path, headers: { host: entryPointHost(key, token) }, agent: keepAlive, timeoutMs: 5000 });
}

/** Resolves once a request for `key` is answered by the container (200), polling every few ms. */
export async function routedPort(proxy: { port: number; proc?: ProxyProcess }, key: string, token: string, timeoutMs = 10_000): Promise<void> {
  let last: Reply | undefined;
  await waitUntil(
    `${key} routed`,
    async () => {
      last = await requestEntryPoint(proxy.port, key, token);
      return last.status === 200 || undefined;
    },
    { timeoutMs, everyMs: 2 },
  ).catch((err: Error) => {
    const logs = proxy.proc === undefined ? '' : `\nproxy log:\n${proxy.proc.stdout}${proxy.proc.stderr}`;
    throw new Error(`${err.message}; last answer: ${last?.status ?? 'none'} ${last?.body.slice(0, 200) ?? ''}${logs}`);
  });
}

/** `galaxy-gie-proxy --sessions url --install-trigger`, as an admin runs it. */
export function installTriggerCli(url: string, extra: string[] = []): Promise<RunResult> {
  return runBounded(process.execPath, [MAIN_JS, '--sessions', url, '--install-trigger', ...extra], { timeoutMs: 30_000, allowFailure: true });
}
