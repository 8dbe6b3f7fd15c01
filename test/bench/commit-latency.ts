import http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { GalaxySqliteWriter } from '../helpers/galaxy-map.js';
import { cookieHeader, fmt, newSessionKey, REQUEST_PATH, type BenchContext } from './context.js';
import { waitUntilIdle } from './proc-stats.js';

/** Longest the benchmark waits for one new session to be routed. */
const ROUTE_TIMEOUT_MS = 5000;

/**
 * Time from Galaxy's write of a new session to the proxy routing it: insert
 * with Galaxy's statements (lock file, DELETE + INSERT, commit), then ask the
 * proxy with the new cookie, back to back on one keep-alive connection, until
 * it answers 200 instead of 404. The clock starts before the write, so the
 * figure includes Galaxy's own commit.
 */
export async function commitToRouted(
  ctx: BenchContext,
  writer: GalaxySqliteWriter,
  proxy: { port: number; pid: number },
  backendPort: number,
  inserts: number,
): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const times: number[] = [];
  try {
    for (let i = 0; i < inserts; i++) {
      // Each write meets a proxy that is done with the previous one.
      await waitUntilIdle(proxy.pid, { windowMs: 200, maxShare: 0.1, timeoutMs: 10_000 });
      const key = newSessionKey();
      if ((await status(agent, proxy.port, key)) !== 404) throw new Error('a session that was never written is routed');
      const started = performance.now();
      writer.addSession(key, '127.0.0.1', backendPort);
      let ms = Number.POSITIVE_INFINITY;
      while (performance.now() - started < ROUTE_TIMEOUT_MS) {
        if ((await status(agent, proxy.port, key)) === 200) {
          ms = performance.now() - started;
          break;
        }
      }
      times.push(ms);
    }
  } finally {
    agent.destroy();
  }
  ctx.progress(`  commit → routed (ms): ${times.map((t) => fmt(t, 0)).join(' ')}`);
  return times;
}

function status(agent: http.Agent, port: number, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: REQUEST_PATH, agent, headers: { cookie: cookieHeader(key) } }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
  });
}
