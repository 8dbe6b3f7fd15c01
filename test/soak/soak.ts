// Soak run (not part of `npm test`): `npm run soak -- --minutes N [--seed S]`.
//
// Runs the real lib/main.js for N minutes under a modest mixed load — HTTP
// requests with uploads, aborted downloads, WebSocket churn, session-map
// writes every second, containers killed and restarted elsewhere, sessions
// whose container is gone for good, unknown sessions and slow-headers
// clients — and prints the errors seen by kind plus the proxy's RSS and open
// file descriptors at start and end. Exit status 0 when no unexpected error
// was seen and RSS and descriptors grew by less than 10 %.
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { spawnProxy } from '../helpers/spawned-proxy.js';
import { request } from '../helpers/client.js';
import { ContainerProcess } from '../helpers/container-process.js';
import { openFds, rssBytes } from '../helpers/fds.js';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { freePort } from '../helpers/ports.js';
import { Random } from '../helpers/random.js';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '10' }, seed: { type: 'string', default: '1' } } });
const MINUTES = Number(values.minutes);
const SEED = Number(values.seed);
if (!(MINUTES > 0) || !Number.isInteger(SEED)) {
  process.stderr.write('usage: npm run soak -- --minutes N [--seed S]\n');
  process.exit(2);
}
const TOTAL_MS = MINUTES * 60_000;
/** Load before the "start" sample: pools, JIT, caches and the heap's size settle first. */
const WARM_UP_MS = Math.min(120_000, TOTAL_MS / 5);
/** Quiet time before a sample: containers drop idle keep-alive connections after 5 s. */
const SETTLE_MS = 7000;
const CONTAINERS = 4;
const SESSIONS_PER_CONTAINER = 5;
const FILLER_ROWS = 2000;

const random = new Random(SEED);
const cleanups: Array<() => unknown> = [];
// Whatever happens, the proxy and container processes go with the soak.
const abort = (why: unknown): void => {
  process.stderr.write(`soak aborted: ${why instanceof Error ? (why.stack ?? why.message) : String(why)}\n`);
  for (const fn of cleanups.reverse()) {
    try {
      void fn();
    } catch {
      // best effort
    }
  }
  process.exit(1);
};
process.on('uncaughtException', abort);
process.on('unhandledRejection', abort);
process.on('SIGINT', () => abort('interrupted'));
process.on('SIGTERM', () => abort('terminated'));
const owner = { after: (fn: () => unknown) => void cleanups.push(fn) };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Errors by kind: expected ones are the answers a fault must produce, the
// rest are failures of the proxy.
const expected = new Map<string, number>();
const unexpected = new Map<string, number>();
const counts = new Map<string, number>();
const bump = (m: Map<string, number>, k: string): void => void m.set(k, (m.get(k) ?? 0) + 1);
/** The first few unexpected errors with their context, to tell what went wrong. */
const details: string[] = [];
const unexpectedError = (kind: string, context: Record<string, unknown> = {}): void => {
  bump(unexpected, kind);
  if (details.length < 20) details.push(JSON.stringify({ at: new Date().toISOString(), kind, ...context }));
};

/** One container slot: its process, the sessions routed to it, and whether it is being replaced. */
interface Slot {
  container: ContainerProcess;
  sessions: string[];
  /** Bumped on every restart: a request that saw another epoch met the restart. */
  epoch: number;
  restarting: boolean;
}

const tmp = tempDir('gie-soak-');
cleanups.push(() => tmp.remove());
const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
const slots: Slot[] = [];
for (let i = 0; i < CONTAINERS; i++) {
  const container = await ContainerProcess.start(owner);
  const sessions = Array.from({ length: SESSIONS_PER_CONTAINER }, () => random.hex(32));
  for (const key of sessions) map.addSession(key, '127.0.0.1', container.port);
  slots.push({ container, sessions, epoch: 0, restarting: false });
}
const deadSession = random.hex(32);
map.addSession(deadSession, '127.0.0.1', await freePort());
map.addMany(Array.from({ length: FILLER_ROWS }, (_, i): [string, string, number] => [`filler-${i}-${random.hex(16)}`, '10.255.0.1', 1024 + i]));

const port = await freePort();
// Time-outs short enough to be exercised (slow clients get their 408 within
// seconds), long enough that a machine busy with other work does not trip them.
const proxy = spawnProxy(['--ip', '127.0.0.1', '--port', String(port), '--sessions', map.path, '--headers-timeout', '5000', '--proxy-timeout', '10000', '--poll-interval', '500']);
cleanups.push(() => proxy.kill());
await proxy.started(15_000);
const pid = proxy.child.pid ?? 0;
let proxyExited = false;
void proxy.exited.then(() => (proxyExited = true));

let running = true;
let wake: () => void = () => {};
let stopping = new Promise<void>((r) => (wake = r));
/** Sleeps, but wakes at once when the load stops. */
const nap = (ms: number): Promise<void> => Promise.race([sleep(ms), stopping]);
const startedAt = Date.now();

/** Classifies a failed exchange with a session's container. */
function failure(slot: Slot | undefined, epoch: number, kind: string, context: Record<string, unknown> = {}): void {
  if (slot !== undefined && (slot.restarting || slot.epoch !== epoch)) bump(expected, `${kind.split(':')[0]} while its container restarted`);
  else unexpectedError(kind, context);
}

async function httpWorker(): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  cleanups.push(() => agent.destroy());
  while (running) {
    const roll = random.int(100);
    if (roll < 5) {
      const r = await request(port, { headers: { cookie: `galaxysession=${random.hex(32)}` } }).catch((err: Error) => err);
      if (r instanceof Error) unexpectedError(`unknown session: ${r.message}`);
      else if (r.status === 404) bump(expected, 'http 404 (unknown session)');
      else unexpectedError(`unknown session: http ${r.status}`);
      continue;
    }
    if (roll < 8) {
      const r = await request(port, { headers: { cookie: `galaxysession=${deadSession}` } }).catch((err: Error) => err);
      if (!(r instanceof Error) && r.status === 502) bump(expected, 'http 502 (container gone for good)');
      else unexpectedError(`dead container: ${r instanceof Error ? r.message : `http ${r.status}`}`);
      continue;
    }
    const slot = random.pick(slots);
    const key = random.pick(slot.sessions);
    const epoch = slot.epoch;
    if (roll < 15) {
      await abortedDownload(key, slot, epoch);
      continue;
    }
    const upload = roll < 35 ? Buffer.alloc(random.pick([1024, 65_536, 1_048_576]), 'u') : undefined;
    const pooled = random.chance(0.5);
    const began = Date.now();
    const r = await request(port, {
      method: upload === undefined ? 'GET' : 'POST',
      path: `/galaxy/gie_proxy/jupyter/api/contents/${random.int(1000)}?x=${random.int(10)}`,
      headers: { cookie: `galaxysession=${key}`, ...(upload === undefined ? {} : { 'content-length': upload.length }) },
      body: upload,
      agent: pooled ? agent : false,
      timeoutMs: 30_000,
    }).catch((err: Error) => err);
    const context = { pooled, upload: upload?.length, ms: Date.now() - began };
    if (r instanceof Error) failure(slot, epoch, `http: ${r.message}`, context);
    else if (r.status !== 200) failure(slot, epoch, `http ${r.status}`, context);
    else if (upload !== undefined && (JSON.parse(r.body) as { bodyBytes: number }).bodyBytes !== upload.length) unexpectedError('upload truncated');
    else bump(counts, 'http ok');
    await sleep(random.int(20));
  }
}

/** Starts a download and walks away after some bytes, as a closed browser tab does. */
async function abortedDownload(key: string, slot: Slot, epoch: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/download', headers: { cookie: `galaxysession=${key}` }, agent: false }, (res) => {
      let got = 0;
      const want = random.pick([1, 100_000, 1_000_000]);
      res.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= want) {
          req.destroy();
          bump(counts, 'download aborted by the client');
          resolve();
        }
      });
      res.on('error', () => {});
      res.on('close', () => {
        if (got < want) failure(slot, epoch, 'download: cut before the client left');
        resolve();
      });
    });
    req.on('error', (err) => {
      if (!req.destroyed || err.message !== 'socket hang up') failure(slot, epoch, `download: ${err.message}`);
      resolve();
    });
    req.setTimeout(10_000, () => req.destroy(new Error('download timed out')));
  });
}

async function webSocketWorker(): Promise<void> {
  while (running) {
    const slot = random.pick(slots);
    const epoch = slot.epoch;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/galaxy/gie_proxy/jupyter/api/kernels/${random.hex(8)}/channels`, {
      headers: { cookie: `galaxysession=${random.pick(slot.sessions)}` },
    });
    let problem: string | undefined;
    ws.on('error', (err) => (problem ??= `ws error: ${err.message}`));
    ws.on('unexpected-response', (_req, res) => {
      problem ??= `ws ${res.statusCode}`;
      ws.terminate();
    });
    // Plain listeners: events.once() would reject on the 'error' a refused handshake emits.
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    const open = new Promise<boolean>((resolve) => ws.once('open', () => resolve(true)));
    const opened = await Promise.race([open, closed.then(() => false), sleep(10_000).then(() => false)]);
    if (opened) {
      for (let i = random.int(10); i > 0 && ws.readyState === WebSocket.OPEN; i--) {
        const echoed = new Promise<boolean>((resolve) => {
          ws.once('message', () => resolve(true));
          ws.once('close', () => resolve(false));
        });
        ws.send(`message ${i} ${random.hex(random.int(200))}`);
        if (!(await Promise.race([echoed, sleep(10_000).then(() => false)]))) {
          problem ??= 'ws: message not echoed';
          break;
        }
      }
      if (random.chance(0.3)) ws.terminate();
      else ws.close();
      bump(counts, 'websocket session');
    }
    await Promise.race([closed, sleep(5000)]);
    ws.terminate();
    if (!opened) problem ??= 'ws: not opened';
    if (problem !== undefined) failure(slot, epoch, problem);
    await sleep(random.int(50));
  }
}

/** Galaxy's writes: a new session, a removed one, an update, about once a second. */
async function mapWriter(): Promise<void> {
  const churn: string[] = [];
  while (running) {
    await nap(1000);
    if (!running) break;
    try {
      const action = random.int(3);
      if (action === 0 || churn.length === 0) {
        const key = `churn-${random.hex(24)}`;
        map.addSession(key, '10.255.0.2', 1 + random.int(65535));
        churn.push(key);
      } else if (action === 1) map.removeSession(churn.shift() as string);
      else map.updateSession(churn[random.int(churn.length)], '10.255.0.3', 1 + random.int(65535));
      bump(counts, 'map write');
    } catch (err) {
      unexpectedError(`map write failed: ${(err as Error).message}`);
    }
  }
}

/** Every 20 s a container is killed, and restarted on another port a moment later (Galaxy's UPDATE). */
async function containerKiller(): Promise<void> {
  while (running) {
    await nap(20_000);
    if (!running) break;
    const slot = random.pick(slots);
    slot.restarting = true;
    slot.epoch++;
    await slot.container.kill();
    bump(counts, 'container killed');
    await sleep(2000);
    const next = await ContainerProcess.start(owner);
    for (const key of slot.sessions) map.updateSession(key, '127.0.0.1', next.port);
    // Each session is back once the proxy routes it to the new container
    // (a reload that began before the last update may still show the old port).
    await Promise.all(slot.sessions.map((key) => routedAgain(key)));
    slot.container = next;
    slot.restarting = false;
  }
}

/** Waits (bounded) until the proxy routes `key` to a live container again. */
async function routedAgain(key: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const r = await request(port, { headers: { cookie: `galaxysession=${key}` } }).catch(() => undefined);
    if (r?.status === 200) return;
    await sleep(100);
  }
  unexpectedError('a moved container was not routed within 15 s');
}

/** A few clients that open a connection and never finish their headers. */
async function slowClients(): Promise<void> {
  while (running) {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect').catch(() => {});
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    await Promise.race([once(socket, 'close'), sleep(10_000)]);
    socket.destroy();
    if (!running && text === '') break; // stopped while waiting
    if (text.startsWith('HTTP/1.1 408 ')) bump(expected, 'http 408 (headers never finished)');
    else unexpectedError(`slow client: ${JSON.stringify(text.slice(0, 40))}`);
  }
}

interface Sample {
  rss: number;
  fds: number;
}
const sample = (): Sample => ({ rss: rssBytes(pid), fds: openFds(pid) });

// Warm up, let it settle, take the start sample; run; stop, settle, take the end sample.
const workers: Array<Promise<void>> = [];
const startLoad = (): void => {
  running = true;
  stopping = new Promise<void>((r) => (wake = r));
  workers.push(...Array.from({ length: 4 }, httpWorker), webSocketWorker(), webSocketWorker(), mapWriter(), containerKiller(), slowClients());
};
const stopLoad = async (): Promise<void> => {
  running = false;
  wake();
  await Promise.all(workers.splice(0));
};

startLoad();
await sleep(WARM_UP_MS);
await stopLoad();
await sleep(SETTLE_MS);
const start = sample();
const samples: Array<Sample & { minute: number }> = [];
startLoad();
const sampler = setInterval(() => samples.push({ minute: Math.round((Date.now() - startedAt) / 6000) / 10, ...sample() }), 30_000);
await sleep(Math.max(0, TOTAL_MS - (Date.now() - startedAt)));
clearInterval(sampler);
await stopLoad();
await sleep(SETTLE_MS);
const end = sample();

if (proxyExited) unexpectedError('the proxy exited');
const alive = await request(port, { headers: { cookie: `galaxysession=${slots[0]?.sessions[0]}` } }).catch(() => undefined);
if (alive?.status !== 200) unexpectedError('the proxy no longer routes a mapped request');
for (const line of proxy.logs.lines) {
  if (line.level === 'warn') bump(expected, `proxy warn: ${line.msg}${typeof line.code === 'string' ? ` (${line.code})` : ''}`);
  else if (line.level !== 'info' && line.level !== 'debug') unexpectedError(`proxy ${line.level}: ${line.msg}`);
}
if (proxy.stderr !== '') unexpectedError(`proxy stderr: ${proxy.stderr.slice(0, 200)}`);

const mb = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
const growth = (a: number, b: number): number => Math.round(((b - a) / a) * 1000) / 10;
const report = {
  minutes: MINUTES,
  seed: SEED,
  counts: Object.fromEntries(counts),
  expectedErrors: Object.fromEntries(expected),
  unexpectedErrors: Object.fromEntries(unexpected),
  unexpectedDetails: details,
  start: { rss: mb(start.rss), fds: start.fds },
  end: { rss: mb(end.rss), fds: end.fds },
  growthPercent: { rss: growth(start.rss, end.rss), fds: growth(start.fds, end.fds) },
  samples: samples.map((s) => `${s.minute} min: ${mb(s.rss)}, ${s.fds} fds`),
};
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
const ok = unexpected.size === 0 && report.growthPercent.rss < 10 && report.growthPercent.fds < 10;
process.stdout.write(ok ? 'soak passed\n' : 'soak FAILED\n');

for (const fn of cleanups.reverse()) await fn();
process.exit(ok ? 0 : 1);
