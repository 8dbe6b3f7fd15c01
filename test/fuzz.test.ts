import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { ANSWERS } from '../src/http/answers.js';
import { request } from './helpers/client.js';
import { openFds, waitForFds } from './helpers/fds.js';
import { generateCase, type FuzzCase, type FuzzTargets } from './helpers/fuzz-cases.js';
import { SqlAlchemyItWriter } from './helpers/galaxy-it-map.js';
import { GalaxySqliteWriter, tempDir } from './helpers/galaxy-map.js';
import { IT_PREFIX } from './helpers/it-proxy.js';
import { freePort } from './helpers/ports.js';
import { Random } from './helpers/random.js';
import { spawnProxy } from './helpers/child.js';
import { alive, startSpawnedProxy, type SpawnedProxy } from './helpers/spawned-proxy.js';
import { startUpstream } from './helpers/upstream.js';

// Replay a failure with FUZZ_SEED=<seed>; run longer with FUZZ_CASES=<n>.
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_127);
const CASES = Number(process.env.FUZZ_CASES ?? 3000);
const CONCURRENCY = 24;
/** A case whose answer has started is over once the connection is quiet this long (keep-alive). */
const QUIET_MS = 300;
/** Longest a case may take: above --headers-timeout (1 s) with room for a loaded machine. */
const CASE_DEADLINE_MS = 5000;

interface Outcome {
  text: string;
  how: 'closed' | 'quiet' | 'deadline';
}

/** Plays one case on a fresh connection and collects what comes back. */
async function play(port: number, c: FuzzCase): Promise<Outcome> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  socket.on('error', () => {});
  const received: Buffer[] = [];
  let quiet: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  const over = new Promise<Outcome['how']>((resolve) => {
    deadline = setTimeout(() => resolve('deadline'), CASE_DEADLINE_MS);
    socket.on('data', (chunk: Buffer) => {
      if (received.length === 0 && c.afterAnswer !== undefined && !socket.destroyed) {
        socket.write(c.afterAnswer);
        if (c.halfClose) socket.end();
      }
      received.push(chunk);
      clearTimeout(quiet);
      // `100 Continue` alone is not an answer: the final one is still to come.
      if (/^(HTTP\/1\.1 100 [^\r]*\r\n\r\n)+$/.test(Buffer.concat(received).toString('latin1'))) return;
      quiet = setTimeout(() => resolve('quiet'), QUIET_MS);
    });
    socket.once('close', () => resolve('closed'));
  });
  await Promise.race([once(socket, 'connect'), over]);
  for (const chunk of c.chunks) {
    if (socket.destroyed) break;
    socket.write(chunk);
    await new Promise((r) => setImmediate(r));
  }
  if (c.halfClose && c.afterAnswer === undefined && !socket.destroyed) socket.end();
  const how = await over;
  clearTimeout(deadline);
  clearTimeout(quiet);
  socket.destroy();
  return { text: Buffer.concat(received).toString('latin1'), how };
}

/**
 * The first final (non-1xx) response in `text`: its status and body, framed
 * by Content-Length or chunked encoding (none for an answer to HEAD).
 */
function firstResponse(text: string, head: boolean): { status: number; body: string } | undefined {
  let rest = text;
  for (;;) {
    const m = /^HTTP\/1\.1 (\d{3})[^\r\n]*\r\n/.exec(rest);
    if (m === null) return undefined;
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) return { status: Number(m[1]), body: '' };
    const fields = rest.slice(0, end);
    const status = Number(m[1]);
    rest = rest.slice(end + 4);
    if (status >= 100 && status < 200 && status !== 101) continue;
    if (head || status === 101) return { status, body: '' };
    const length = /\r\ncontent-length: *(\d+)/i.exec(fields);
    if (length !== null) return { status, body: rest.slice(0, Number(length[1])) };
    if (!/\r\ntransfer-encoding: *chunked/i.test(fields)) return { status, body: rest };
    let body = '';
    for (;;) {
      const line = /^([0-9a-f]+)[^\r]*\r\n/i.exec(rest);
      const size = line === null ? 0 : parseInt(line[1] as string, 16);
      if (line === null || size === 0) return { status, body };
      body += rest.slice(line[0].length, line[0].length + size);
      rest = rest.slice(line[0].length + size + 2);
    }
  }
}

/** Statuses only the proxy itself produces here (the stand-in containers never do): their bodies are the fixed ones. */
const PROXY_STATUSES = new Set([404, 405, 408, 431, 502, 504]);

/** The proxy's flags for a fuzz run: time-outs short enough to be reached. */
const FUZZ_FLAGS = ['--verbose', '--headers-timeout', '1000', '--proxy-timeout', '500'];

/**
 * GIE mode: lib/main.js on Galaxy's session map, the targets named by cookie.
 * IT mode: the gx-it-proxy bin on Galaxy's gxitproxy map, the targets named
 * as entry points by path or by Host (32-hex tokens, as Galaxy < 23.1 made
 * them, so that the log scan below finds any that leaks).
 */
type FuzzMode = 'gie' | 'it';

async function fuzz(t: import('node:test').TestContext, mode: FuzzMode): Promise<void> {
  const started = Date.now();
  const tmp = tempDir();
  const echo = await startUpstream('a');
  // Fuzzed frames make the container's WebSocket fail; that is its business.
  echo.wss.on('connection', (ws) => ws.on('error', () => {}));
  const other = await startUpstream('other');
  const held = new Set<net.Socket>();
  const silent = net.createServer((socket) => {
    held.add(socket);
    socket.resume();
    socket.on('error', () => {});
    socket.once('close', () => held.delete(socket));
  });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  t.after(async () => {
    for (const socket of held) socket.destroy();
    silent.close();
    await echo.close();
    await other.close();
    tmp.remove();
  });

  const random = new Random(SEED);
  const keyLength = mode === 'gie' ? 32 : 16;
  const mapped = [random.hex(keyLength), random.hex(keyLength), random.hex(keyLength)];
  const dead = random.hex(keyLength);
  const quiet = random.hex(keyLength);
  const rows: Array<[string, string, number]> = [
    ...mapped.map((key): [string, string, number] => [key, '127.0.0.1', echo.port]),
    [dead, '127.0.0.1', await freePort()],
    [quiet, '127.0.0.1', (silent.address() as net.AddressInfo).port],
  ];
  // Only IT mode draws tokens, so that a GIE seed replays the cases it always made.
  const tokens = new Map(mode === 'it' ? rows.map(([key]) => [key, random.hex(32)]) : []);
  const targets: FuzzTargets = {
    mapped,
    dead,
    silent: quiet,
    elsewhere: `127.0.0.1:${other.port}`,
    entryPoints: mode === 'it' ? { prefix: IT_PREFIX, domain: 'galaxy.example.org', tokens } : undefined,
  };
  let proxy: SpawnedProxy;
  if (mode === 'gie') {
    const map = new GalaxySqliteWriter(join(tmp.dir, 'session_map.sqlite'));
    map.addMany(rows);
    proxy = await startSpawnedProxy(t, map.path, FUZZ_FLAGS);
  } else {
    const map = new SqlAlchemyItWriter(join(tmp.dir, 'interactivetools_map.sqlite'));
    t.after(() => map.close());
    map.saveMany(rows.map(([key, host, port]) => ({ key, token: tokens.get(key) ?? '', host, port })));
    const port = await freePort();
    const proc = spawnProxy(['--ip', '127.0.0.1', '--port', String(port), '--sessions', map.path, '--proxyPathPrefix', IT_PREFIX, ...FUZZ_FLAGS], { bin: 'gx-it-proxy' });
    t.after(() => proc.kill());
    await proc.started(10_000);
    proxy = { proc, pid: proc.child.pid ?? 0, port };
  }
  const baseFds = openFds(proxy.pid);

  const failures: string[] = [];
  const fail = (c: FuzzCase, what: string, text: string): void => {
    if (failures.length < 10) failures.push(`case ${c.id} (${c.kind}${c.mutated ? ', mutated' : ''}): ${what}\n  sent ${JSON.stringify(Buffer.concat(c.chunks).toString('latin1').slice(0, 300))}\n  got  ${JSON.stringify(text.slice(0, 300))}`);
  };
  const statuses = new Map<string, number>();
  const plainStatuses = new Map<string, number>();
  const hows = new Map<string, number>();
  const count = (m: Map<string, number>, k: string): void => void m.set(k, (m.get(k) ?? 0) + 1);
  const secrets = new Set<string>(mode === 'gie' ? [...targets.mapped, targets.dead, targets.silent] : tokens.values());
  const proxyBodies = new Set(['', ...Object.values(ANSWERS).map((a) => a.body)]);
  const ports = [echo.port, other.port].map(String);

  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < CASES) {
      const c = generateCase(random, next++, targets);
      // A cookie value that also sits in the request line may be logged as a
      // path; in IT mode a token may be a path's only in a request line
      // (pipelined ones too), anything but a Host header.
      const sentText = Buffer.concat(c.chunks).toString('latin1');
      const requestLine = mode === 'gie' ? (sentText.split('\n', 1)[0] ?? '') : sentText.split('\n').filter((l) => !/^host:/i.test(l)).join('\n');
      for (const s of c.secrets) if (!requestLine.includes(s)) secrets.add(s);
      const { text, how } = await play(proxy.port, c);
      count(hows, how);
      if (text !== '' && !text.startsWith('HTTP/1.1 ')) fail(c, 'an answer that is not HTTP/1.1', text);
      const sent = Buffer.concat(c.chunks).toString('latin1');
      const res = firstResponse(text, sent.startsWith('HEAD '));
      count(c.mutated ? statuses : plainStatuses, res === undefined ? (text === '' ? 'none' : 'partial') : String(res.status));
      if (c.expect !== undefined && res?.status !== c.expect) fail(c, `expected ${c.expect}, got ${res?.status ?? how}`, text);
      if (res !== undefined && res.status !== 200 && res.status !== 101) {
        if (PROXY_STATUSES.has(res.status) && !proxyBodies.has(res.body)) fail(c, 'an error body that is not one of the fixed ones', text);
        if (ports.some((p) => res.body.includes(p)) || /\bat .+:\d+:\d+/.test(res.body)) fail(c, 'an address or stack in an error body', text);
        if (c.secrets.some((s) => res.body.includes(s))) fail(c, 'a cookie value in an error body', text);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const fuzzMs = Date.now() - started;

  // The process survived, still routes, and logged nothing it should not.
  assert.ok(alive(proxy), `the proxy exited; stderr: ${proxy.proc.stderr}`);
  const first = targets.mapped[0] ?? '';
  const check = await request(proxy.port, mode === 'gie' ? { headers: { cookie: `galaxysession=${first}` } } : { path: `${IT_PREFIX}/${first}/${tokens.get(first) ?? ''}/` });
  assert.equal(check.status, 200);
  assert.equal(other.connectionCount, 0, 'the proxy connected to a machine the map does not name');
  // IT mode: a path under the prefix is logged with its token segment hidden.
  // A token anywhere else in a refused path or key (where a mutated request
  // put it) is just text the client sent: there only the token segment counts.
  const tokenSegments = mode === 'it' ? proxy.proc.logs.lines.flatMap((l) => (typeof l.path === 'string' && l.path.startsWith(`${IT_PREFIX}/`) ? [l.path.slice(IT_PREFIX.length).split(/[?#]/)[0]?.split('/')[2] ?? ''] : [])) : [];
  assert.deepEqual(tokenSegments.filter((s) => secrets.has(s)), [], 'an entry point token reached the log as the token of a path');
  const logText = proxy.proc.logs.lines.map((l) => JSON.stringify(mode === 'it' ? { ...l, path: undefined, entryPoint: undefined } : l)).join('\n');
  const leaked = (logText.match(/[0-9a-f]{32,}/g) ?? []).filter((run) => {
    for (let i = 0; i + 32 <= run.length; i++) if (secrets.has(run.slice(i, i + 32))) return true;
    return false;
  });
  assert.deepEqual(leaked, [], mode === 'gie' ? 'a cookie value reached the log' : 'an entry point token reached the log');
  const bad = proxy.proc.logs.lines.filter((l) => l.level === 'error' || l.level === 'fatal' || l.level === 'raw');
  assert.deepEqual(bad.slice(0, 5), [], 'error-level or non-JSON log lines');
  assert.equal(proxy.proc.stderr, '');
  // Nothing leaked: once the containers drop their idle keep-alive
  // connections, the proxy is back to its start-up descriptors.
  echo.server.closeIdleConnections();
  const fds = await waitForFds(proxy.pid, baseFds, 15_000);

  t.diagnostic(`${mode} mode, seed ${SEED}: ${CASES} cases in ${fuzzMs} ms; log lines ${proxy.proc.logs.lines.length}; fds ${baseFds} → ${fds}`);
  t.diagnostic(`ended by: ${JSON.stringify(Object.fromEntries(hows))}`);
  t.diagnostic(`first status, unmutated cases: ${JSON.stringify(Object.fromEntries([...plainStatuses].sort()))}`);
  t.diagnostic(`first status, mutated cases: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
  assert.deepEqual(failures, []);
}

test(`fuzz: ${CASES} seeded random and mutated requests, cookies, headers, upgrades and WebSocket frames (seed ${SEED})`, (t) => fuzz(t, 'gie'));

test(`fuzz, Interactive Tools: ${CASES} seeded random and mutated requests naming entry points by path and by Host, headers, upgrades and WebSocket frames (seed ${SEED})`, (t) => fuzz(t, 'it'));
