import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { cookieHeader, fmt, REQUEST_PATH, type BenchContext } from './context.js';
import { cpuSeconds } from './proc-stats.js';

/** A Jupyter kernel message is a few hundred bytes of JSON. */
const MESSAGE = Buffer.from(JSON.stringify({ header: { msg_type: 'execute_request', msg_id: 'x'.repeat(32) }, content: { code: '1+1' } }));

const WARM_UP_MESSAGES = 500;

/** One round of echoes on one WebSocket. */
export interface EchoRound {
  /** Round trips per second. */
  readonly rate: number;
  /**
   * CPU time (all threads) the process under test spent per round trip, in
   * µs: the per-frame work itself, which the rate (a chain of four processes
   * waking each other on a shared machine) shows only through the noise.
   */
  readonly cpuUs: number;
}

/**
 * Echo round trips on one WebSocket (send, wait for the echo, send again)
 * through the server at `port` (process `pid`), for `seconds`.
 */
export async function webSocketRoundTrips(ctx: BenchContext, name: string, port: number, pid: number, key: string, seconds = ctx.seconds): Promise<EchoRound> {
  const path = REQUEST_PATH.replace('/api/contents', '/api/kernels/bench/channels').split('?')[0];
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { cookie: cookieHeader(key) }, perMessageDeflate: false });
  try {
    await Promise.race([once(ws, 'open'), once(ws, 'unexpected-response').then(() => Promise.reject(new Error(`${name}: upgrade refused`)))]);
    let count = 0;
    let stopAt = Number.POSITIVE_INFINITY;
    let cpu0 = 0;
    const started = await new Promise<number>((resolve, reject) => {
      let t0 = 0;
      ws.on('message', () => {
        count++;
        if (count === WARM_UP_MESSAGES) {
          cpu0 = cpuSeconds(pid);
          t0 = performance.now();
          stopAt = t0 + seconds * 1000;
        }
        if (performance.now() >= stopAt) resolve(t0);
        else ws.send(MESSAGE);
      });
      ws.once('close', () => reject(new Error(`${name}: WebSocket closed during the round`)));
      ws.once('error', reject);
      ws.send(MESSAGE);
    });
    const trips = count - WARM_UP_MESSAGES;
    const cpuUs = ((cpuSeconds(pid) - cpu0) * 1e6) / trips;
    const rate = trips / ((performance.now() - started) / 1000);
    ctx.progress(`  ${name.padEnd(18)} ${fmt(rate, 0).padStart(7)} round trips/s on one WebSocket, ${fmt(cpuUs, 1)} µs CPU per round trip`);
    return { rate, cpuUs };
  } finally {
    ws.removeAllListeners('close');
    ws.terminate();
  }
}
