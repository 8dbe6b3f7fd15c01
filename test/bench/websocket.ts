import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { cookieHeader, fmt, REQUEST_PATH, type BenchContext } from './context.js';

/** A Jupyter kernel message is a few hundred bytes of JSON. */
const MESSAGE = Buffer.from(JSON.stringify({ header: { msg_type: 'execute_request', msg_id: 'x'.repeat(32) }, content: { code: '1+1' } }));

const WARM_UP_MESSAGES = 500;

/**
 * Echo round trips per second on one WebSocket (send, wait for the echo,
 * send again) through the proxy at `port`, for `seconds`.
 */
export async function webSocketRoundTrips(ctx: BenchContext, name: string, port: number, key: string, seconds = ctx.seconds): Promise<number> {
  const path = REQUEST_PATH.replace('/api/contents', '/api/kernels/bench/channels').split('?')[0];
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { cookie: cookieHeader(key) }, perMessageDeflate: false });
  try {
    await Promise.race([once(ws, 'open'), once(ws, 'unexpected-response').then(() => Promise.reject(new Error(`${name}: upgrade refused`)))]);
    let count = 0;
    let stopAt = Number.POSITIVE_INFINITY;
    const started = await new Promise<number>((resolve, reject) => {
      let t0 = 0;
      ws.on('message', () => {
        count++;
        if (count === WARM_UP_MESSAGES) {
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
    const rate = (count - WARM_UP_MESSAGES) / ((performance.now() - started) / 1000);
    ctx.progress(`  ${name.padEnd(18)} ${fmt(rate, 0).padStart(7)} round trips/s on one WebSocket`);
    return rate;
  } finally {
    ws.removeAllListeners('close');
    ws.terminate();
  }
}
