// Soak run (not part of `npm test`): `npm run soak -- --minutes N [--seed S]`.
//
// Runs two real proxies for N minutes under a modest mixed load: lib/main.js
// on Galaxy's GIE session map (cookie routing) and the gx-it-proxy bin on
// Galaxy's Interactive Tools map (entry points by path and by Host), in front
// of the same containers — HTTP requests with uploads, aborted downloads,
// WebSocket churn, writes to both maps every second, containers killed and
// restarted elsewhere (both maps updated), sessions and entry points whose
// container is gone for good, unknown ones and slow-headers clients — and
// prints the errors seen by kind plus each proxy's RSS and open file
// descriptors at start and end. Exit status 0 when no unexpected error was
// seen and RSS and descriptors of each grew by less than 10 %.
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { spawnProxy } from '../helpers/spawned-proxy.js';
import { request } from '../helpers/client.js';
import { ContainerProcess } from '../helpers/container-process.js';
import { openFds, rssBytes } from '../helpers/fds.js';
import { SqlAlchemyItWriter } from '../helpers/galaxy-it-map.js';
import { GalaxySqliteWriter, tempDir } from '../helpers/galaxy-map.js';
import { IT_PREFIX } from '../helpers/it-proxy.js';
import { freePort, refuses } from '../helpers/ports.js';
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
const ENTRY_POINTS_PER_CONTAINER = 3;
const IT_DOMAIN = 'ep.interactivetool.galaxy.example.org';
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

interface EntryPoint {
  key: string;
  token: string;
}
const newEntryPoint = (): EntryPoint => ({ key: random.hex(16), token: random.hex(32) });

/** One container slot: its process, the sessions and entry points routed to it, and whether it is being replaced. */
interface Slot {
  container: ContainerProcess;
  sessions: string[];
  entryPoints: EntryPoint[];
  /** Bumped on every restart: a request that saw another epoch met the restart. */
  epoch: number;
  restarting: boolean;
}

/**
 * A port where nothing listens and no container of this run can be started:
 * below the ephemeral range the containers' port 0 draws from (a free
 * ephemeral port, once released, was sometimes given to a restarted
 * container, which then answered for the "dead" session).
 */
async function portNobodyGets(): Promise<number> {
  const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  for (let port = (low ?? 32768) - 1; port > 1024; port--) if (await refuses(port)) return port;
  throw new Error('no port below the ephemeral range is free');
}

const tmp = tempDir('gie-soak-');
cleanups.push(() => tmp.remove());
const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
const itMap = new SqlAlchemyItWriter(join(tmp.dir, 'interactivetools_map.sqlite'));
cleanups.push(() => itMap.close());
const slots: Slot[] = [];
for (let i = 0; i < CONTAINERS; i++) {
  const container = await ContainerProcess.start(owner);
  const sessions = Array.from({ length: SESSIONS_PER_CONTAINER }, () => random.hex(32));
  for (const key of sessions) map.addSession(key, '127.0.0.1', container.port);
  const entryPoints = Array.from({ length: ENTRY_POINTS_PER_CONTAINER }, newEntryPoint);
  for (const ep of entryPoints) itMap.save({ ...ep, host: '127.0.0.1', port: container.port });
  slots.push({ container, sessions, entryPoints, epoch: 0, restarting: false });
}
const deadSession = random.hex(32);
const deadPort = await portNobodyGets();
map.addSession(deadSession, '127.0.0.1', deadPort);
const deadEntryPoint = newEntryPoint();
itMap.save({ ...deadEntryPoint, host: '127.0.0.1', port: deadPort });
map.addMany(Array.from({ length: FILLER_ROWS }, (_, i): [string, string, number] => [`filler-${i}-${random.hex(16)}`, '10.255.0.1', 1024 + i]));
itMap.saveMany(Array.from({ length: FILLER_ROWS }, (_, i) => ({ ...newEntryPoint(), host: '10.255.0.1', port: 1024 + i })));

const port = await freePort();
// Time-outs short enough to be exercised (slow clients get their 408 within
// seconds), long enough that a machine busy with other work does not trip them.
const timeouts = ['--headers-timeout', '5000', '--proxy-timeout', '10000', '--poll-interval', '500'];
const proxy = spawnProxy(['--ip', '127.0.0.1', '--port', String(port), '--sessions', map.path, ...timeouts]);
cleanups.push(() => proxy.kill());
const itPort = await freePort();
const itProxy = spawnProxy(['--ip', '127.0.0.1', '--port', String(itPort), '--sessions', itMap.path, '--proxyPathPrefix', IT_PREFIX, ...timeouts], { bin: 'gx-it-proxy' });
cleanups.push(() => itProxy.kill());
await Promise.all([proxy.started(15_000), itProxy.started(15_000)]);
const proxies = { gie: { proc: proxy, pid: proxy.child.pid ?? 0, exited: false }, it: { proc: itProxy, pid: itProxy.child.pid ?? 0, exited: false } };
for (const p of Object.values(proxies)) void p.proc.exited.then(() => (p.exited = true));

/** How a client names a container: a session cookie (GIE), or an entry point by path or by Host (IT). */
type Via = 'gie' | 'it path' | 'it host';
interface Address {
  via: Via;
  port: number;
  /** The request target for `rest`, the path the container is to get (a path starting with `/`). */
  url: (rest: string) => string;
  headers: Record<string, string>;
}
function addressOf(via: Via, session: string, ep: EntryPoint): Address {
  if (via === 'gie') return { via, port, url: (rest) => rest, headers: { cookie: `galaxysession=${session}` } };
  if (via === 'it path') return { via, port: itPort, url: (rest) => `${IT_PREFIX}/${ep.key}/${ep.token}${rest}`, headers: {} };
  return { via, port: itPort, url: (rest) => rest, headers: { host: `${ep.key}-${ep.token}.${IT_DOMAIN}` } };
}
const VIAS: readonly Via[] = ['gie', 'gie', 'it path', 'it host'];
/** A random way to reach one of the slot's sessions or entry points. */
const addressIn = (slot: Slot): Address => addressOf(random.pick(VIAS), random.pick(slot.sessions), random.pick(slot.entryPoints));
/** Every session and entry point of a slot, each by every way. */
const addressesOf = (slot: Slot): Address[] => [
  ...slot.sessions.map((s) => addressOf('gie', s, slot.entryPoints[0])),
  ...slot.entryPoints.flatMap((ep) => [addressOf('it path', '', ep), addressOf('it host', '', ep)]),
];

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
      const unknown = addressOf(random.pick(VIAS), random.hex(32), newEntryPoint());
      const r = await request(unknown.port, { path: unknown.url('/'), headers: unknown.headers }).catch((err: Error) => err);
      if (r instanceof Error) unexpectedError(`${unknown.via}: unknown: ${r.message}`);
      else if (r.status === 404) bump(expected, `${unknown.via}: http 404 (unknown session or entry point)`);
      else unexpectedError(`${unknown.via}: unknown: http ${r.status}`);
      continue;
    }
    if (roll < 8) {
      const dead = addressOf(random.pick(VIAS), deadSession, deadEntryPoint);
      const r = await request(dead.port, { path: dead.url('/'), headers: dead.headers }).catch((err: Error) => err);
      if (!(r instanceof Error) && r.status === 502) bump(expected, `${dead.via}: http 502 (container gone for good)`);
      else unexpectedError(`${dead.via}: dead container: ${r instanceof Error ? r.message : `http ${r.status}`}`);
      continue;
    }
    const slot = random.pick(slots);
    const address = addressIn(slot);
    const epoch = slot.epoch;
    if (roll < 15) {
      await abortedDownload(address, slot, epoch);
      continue;
    }
    const upload = roll < 35 ? Buffer.alloc(random.pick([1024, 65_536, 1_048_576]), 'u') : undefined;
    const pooled = random.chance(0.5);
    const began = Date.now();
    const r = await request(address.port, {
      method: upload === undefined ? 'GET' : 'POST',
      path: address.url(`/galaxy/gie_proxy/jupyter/api/contents/${random.int(1000)}?x=${random.int(10)}`),
      headers: { ...address.headers, ...(upload === undefined ? {} : { 'content-length': upload.length }) },
      body: upload,
      agent: pooled ? agent : false,
      timeoutMs: 30_000,
    }).catch((err: Error) => err);
    const context = { via: address.via, pooled, upload: upload?.length, ms: Date.now() - began };
    if (r instanceof Error) failure(slot, epoch, `${address.via}: http: ${r.message}`, context);
    else if (r.status !== 200) failure(slot, epoch, `${address.via}: http ${r.status}`, context);
    else if (upload !== undefined && (JSON.parse(r.body) as { bodyBytes: number }).bodyBytes !== upload.length) unexpectedError(`${address.via}: upload truncated`);
    else bump(counts, `${address.via}: http ok`);
    await sleep(random.int(20));
  }
}

/** Starts a download and walks away after some bytes, as a closed browser tab does. */
async function abortedDownload(address: Address, slot: Slot, epoch: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: address.port, path: address.url('/download'), headers: address.headers, agent: false }, (res) => {
      let got = 0;
      const want = random.pick([1, 100_000, 1_000_000]);
      res.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= want) {
          req.destroy();
          bump(counts, `${address.via}: download aborted by the client`);
          resolve();
        }
      });
      res.on('error', () => {});
      res.on('close', () => {
        if (got < want) failure(slot, epoch, `${address.via}: download: cut before the client left`);
        resolve();
      });
    });
    req.on('error', (err) => {
      if (!req.destroyed || err.message !== 'socket hang up') failure(slot, epoch, `${address.via}: download: ${err.message}`);
      resolve();
    });
    req.setTimeout(10_000, () => req.destroy(new Error('download timed out')));
  });
}

async function webSocketWorker(): Promise<void> {
  while (running) {
    const slot = random.pick(slots);
    const epoch = slot.epoch;
    const address = addressIn(slot);
    const ws = new WebSocket(`ws://127.0.0.1:${address.port}${address.url(`/galaxy/gie_proxy/jupyter/api/kernels/${random.hex(8)}/channels`)}`, { headers: address.headers });
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
      bump(counts, `${address.via}: websocket session`);
    }
    await Promise.race([closed, sleep(5000)]);
    ws.terminate();
    if (!opened) problem ??= 'ws: not opened';
    if (problem !== undefined) failure(slot, epoch, `${address.via}: ${problem}`);
    await sleep(random.int(50));
  }
}

/** Galaxy's writes to both maps: a new session or entry point, a removed one, an update, about once a second each. */
async function mapWriter(): Promise<void> {
  const churn: string[] = [];
  const itChurn: EntryPoint[] = [];
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
      bump(counts, 'gie map write');
      // Galaxy ≥ 24.2: save() is DELETE + INSERT (a new entry point or a moved one), remove() a DELETE.
      const itAction = random.int(3);
      if (itAction === 0 || itChurn.length === 0) {
        const ep = newEntryPoint();
        itMap.save({ ...ep, host: '10.255.0.2', port: 1 + random.int(65535) });
        itChurn.push(ep);
      } else if (itAction === 1) itMap.remove((itChurn.shift() as EntryPoint).key);
      else itMap.save({ ...(itChurn[random.int(itChurn.length)]), host: '10.255.0.3', port: 1 + random.int(65535) });
      bump(counts, 'it map write');
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
    for (const ep of slot.entryPoints) itMap.save({ ...ep, host: '127.0.0.1', port: next.port });
    // Each session and entry point is back once its proxy routes it to the new
    // container (a reload that began before the last update may still show the old port).
    await Promise.all(addressesOf(slot).map((a) => routedAgain(a)));
    slot.container = next;
    slot.restarting = false;
  }
}

/** Waits (bounded) until the proxy routes `address` to a live container again. */
async function routedAgain(address: Address): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const r = await request(address.port, { path: address.url('/'), headers: address.headers }).catch(() => undefined);
    if (r?.status === 200) return;
    await sleep(100);
  }
  unexpectedError(`${address.via}: a moved container was not routed within 15 s`);
}

/** A few clients that open a connection and never finish their headers. */
async function slowClients(): Promise<void> {
  for (let n = 0; running; n++) {
    const socket = net.connect(n % 2 === 0 ? port : itPort, '127.0.0.1');
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
type Samples = Record<keyof typeof proxies, Sample>;
const sample = (): Samples => ({
  gie: { rss: rssBytes(proxies.gie.pid), fds: openFds(proxies.gie.pid) },
  it: { rss: rssBytes(proxies.it.pid), fds: openFds(proxies.it.pid) },
});

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
const samples: Array<Samples & { minute: number }> = [];
startLoad();
const sampler = setInterval(() => samples.push({ minute: Math.round((Date.now() - startedAt) / 6000) / 10, ...sample() }), 30_000);
await sleep(Math.max(0, TOTAL_MS - (Date.now() - startedAt)));
clearInterval(sampler);
await stopLoad();
await sleep(SETTLE_MS);
const end = sample();

for (const [name, p] of Object.entries(proxies)) {
  if (p.exited) unexpectedError(`the ${name} proxy exited`);
  for (const line of p.proc.logs.lines) {
    if (line.level === 'warn') bump(expected, `${name} proxy warn: ${line.msg}${typeof line.code === 'string' ? ` (${line.code})` : ''}`);
    else if (line.level !== 'info' && line.level !== 'debug') unexpectedError(`${name} proxy ${line.level}: ${line.msg}`);
  }
  if (p.proc.stderr !== '') unexpectedError(`${name} proxy stderr: ${p.proc.stderr.slice(0, 200)}`);
}
for (const address of addressesOf(slots[0])) {
  const alive = await request(address.port, { path: address.url('/'), headers: address.headers }).catch(() => undefined);
  if (alive?.status !== 200) unexpectedError(`${address.via}: the proxy no longer routes a mapped request`);
}

const mb = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
const growth = (a: number, b: number): number => Math.round(((b - a) / a) * 1000) / 10;
const report = {
  minutes: MINUTES,
  seed: SEED,
  counts: Object.fromEntries(counts),
  expectedErrors: Object.fromEntries(expected),
  unexpectedErrors: Object.fromEntries(unexpected),
  unexpectedDetails: details,
  proxies: Object.fromEntries(
    (['gie', 'it'] as const).map((name) => [
      name,
      {
        start: { rss: mb(start[name].rss), fds: start[name].fds },
        end: { rss: mb(end[name].rss), fds: end[name].fds },
        growthPercent: { rss: growth(start[name].rss, end[name].rss), fds: growth(start[name].fds, end[name].fds) },
        samples: samples.map((s) => `${s.minute} min: ${mb(s[name].rss)}, ${s[name].fds} fds`),
      },
    ]),
  ),
};
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
const grown = (['gie', 'it'] as const).filter((name) => growth(start[name].rss, end[name].rss) >= 10 || growth(start[name].fds, end[name].fds) >= 10);
const ok = unexpected.size === 0 && grown.length === 0;
process.stdout.write(ok ? 'soak passed\n' : 'soak FAILED\n');

for (const fn of cleanups.reverse()) await fn();
process.exit(ok ? 0 : 1);
