/**
 * Every session map format × every way it gets written, against the real
 * watcher and a real proxy: the final state is routed within 1 s of the
 * write, and no intermediate broken state (empty or half-written file, file
 * missing, table missing) ever replaces a good map — a session present in
 * every state is requested throughout and must always reach its container,
 * and every `session map reloaded` line must count the sessions of a state
 * that was really written.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as pace } from 'node:timers/promises';
import Database from 'better-sqlite3';
import {
  GalaxySqliteWriter,
  GXPROXY2,
  OlderGalaxySqliteWriter,
  galaxyJson,
  oldestGalaxyJson,
  tempDir,
  truncateAndWrite,
  writeSqliteMapFile,
} from '../helpers/galaxy-map.js';
import { startUpstream, type Seen, type Upstream } from '../helpers/upstream.js';
import { startInProcessProxy } from '../helpers/in-process-proxy.js';
import { startSpawnedProxy } from '../helpers/spawned-proxy.js';
import { cookie, request } from '../helpers/client.js';
import type { LogCapture } from '../helpers/logs.js';
import { MAP_LOG } from '../../src/session-map/reload-report.js';

/** A state of the map: cookie → name of the container (upstream) it routes to. */
type State = ReadonlyMap<string, string>;
/** The same state as rows: cookie, host, port. */
type Rows = [string, string, number][];

const state = (o: Record<string, string>): State => new Map(Object.entries(o));
// Three states with different session counts; `stable` is in all of them. In
// each state every session has its own container, as the oldest JSON format
// (keyed by host:port) requires.
const A = state({ stable: 'u0', s1: 'u1', s2: 'u2' });
const B = state({ stable: 'u0', s1: 'u3', s2: 'u2', s3: 'u1' });
const C = state({ stable: 'u0', s3: 'u1' });
const ROUTED_WITHIN_MS = 1000;

interface WriteContext {
  readonly path: string;
  /** Runs `action` and waits until the proxy has reported the read failure it causes. */
  failureDuring(reason: string, action: () => void | Promise<void>): Promise<void>;
}

/** Writes `to` over `from`; returns any other complete states a reader could see on the way. */
type Mode = (ctx: WriteContext, from: Rows, to: Rows) => Rows[] | Promise<Rows[]>;

interface Format {
  readonly file: string;
  /** Writes the first state; may return a clean-up (a writer connection kept open). */
  create(path: string, rows: Rows): (() => void) | void;
  readonly modes: Record<string, Mode>;
}

const keysOf = (rows: Rows): Set<string> => new Set(rows.map(([k]) => k));

/** Rows of `from` updated by the given rows (a step of a sequence of commits). */
function step(from: Rows, change: { set?: Rows; remove?: string[] }): Rows {
  const map = new Map(from.map((r) => [r[0], r]));
  for (const key of change.remove ?? []) map.delete(key);
  for (const row of change.set ?? []) map.set(row[0], row);
  return [...map.values()];
}

/** The commits that take `from` to `to` one session at a time: removals, then changes and additions. */
function commits(from: Rows, to: Rows): { remove?: string[]; set?: Rows }[] {
  const target = keysOf(to);
  const before = new Map(from.map((r) => [r[0], r]));
  const list: { remove?: string[]; set?: Rows }[] = [];
  for (const [key] of from) if (!target.has(key)) list.push({ remove: [key] });
  for (const row of to) {
    const old = before.get(row[0]);
    if (old === undefined || old[1] !== row[1] || old[2] !== row[2]) list.push({ set: [row] });
  }
  return list;
}

/** Applies `commits(from, to)` with `apply`, returning each intermediate state. */
function oneByOne(from: Rows, to: Rows, apply: (c: { remove?: string[]; set?: Rows }) => void): Rows[] {
  const seen: Rows[] = [];
  let current = from;
  for (const c of commits(from, to)) {
    apply(c);
    current = step(current, c);
    seen.push(current);
  }
  return seen;
}

/** A burst: `from` → `to` through a detour (`to` less its last session), all within a few milliseconds. */
function burstStates(from: Rows, to: Rows): Rows[] {
  const detour = to.slice(0, -1);
  return [detour, from, detour, to];
}

/** Commits its way through `states` one session at a time; returns every state on the way. */
function commitThrough(from: Rows, states: Rows[], apply: (c: { remove?: string[]; set?: Rows }) => void): Rows[] {
  const seen: Rows[] = [];
  let current = from;
  for (const s of states) {
    seen.push(...oneByOne(current, s, apply));
    current = s;
  }
  return seen;
}

function jsonFormat(serialise: (rows: Rows) => string, withDelete: boolean): Format {
  const modes: Record<string, Mode> = {
    'truncate-and-write': async (ctx, _from, to) => {
      // Galaxy truncates the file, then writes it: the proxy meets the
      // half-written file (the write goes on once it has) and must keep its
      // last good map.
      await truncateAndWrite(ctx.path, serialise(to), () => ctx.failureDuring('incomplete', () => {}));
      return [];
    },
    'rename over': (ctx, _from, to) => {
      writeFileSync(`${ctx.path}.tmp`, serialise(to));
      renameSync(`${ctx.path}.tmp`, ctx.path);
      return [];
    },
    'burst of rewrites within milliseconds': (ctx, from, to) => {
      const states = burstStates(from, to);
      for (const s of states) writeFileSync(ctx.path, serialise(s));
      return states;
    },
  };
  if (withDelete) {
    modes['delete and re-create'] = async (ctx, _from, to) => {
      await ctx.failureDuring('missing', () => unlinkSync(ctx.path));
      writeFileSync(ctx.path, serialise(to));
      return [];
    };
  }
  return { file: 'session_map.json', create: (path, rows) => writeFileSync(path, serialise(rows)), modes };
}

const galaxyStatements: Mode = (ctx, from, to) => {
  const writer = new GalaxySqliteWriter(ctx.path);
  return oneByOne(from, to, ({ remove, set }) => {
    for (const key of remove ?? []) writer.removeSession(key);
    for (const [key, host, port] of set ?? []) {
      if (keysOf(from).has(key)) writer.updateSession(key, host, port);
      else writer.addSession(key, host, port);
    }
  });
};

const FORMATS: Record<string, Format> = {
  'sqlite gxproxy2': {
    file: 'session_map.sqlite',
    create: (path, rows) => new GalaxySqliteWriter(path).addMany(rows),
    modes: {
      "Galaxy's statements": galaxyStatements,
      'rename over': (ctx, _from, to) => {
        writeSqliteMapFile(`${ctx.path}.new`, 'gxproxy2', to);
        renameSync(`${ctx.path}.new`, ctx.path);
        return [];
      },
      'delete and re-create': async (ctx, _from, to) => {
        await ctx.failureDuring('missing', () => unlinkSync(ctx.path));
        writeSqliteMapFile(ctx.path, 'gxproxy2', to);
        return [];
      },
      'burst of commits within milliseconds': (ctx, from, to) => {
        const writer = new GalaxySqliteWriter(ctx.path);
        return commitThrough(from, burstStates(from, to), ({ remove, set }) => {
          for (const key of remove ?? []) writer.removeSession(key);
          for (const [key, host, port] of set ?? []) writer.addSession(key, host, port);
        });
      },
    },
  },
  'sqlite gxproxy2 in WAL mode': {
    file: 'session_map.sqlite',
    create: (path, rows) => {
      // One writer connection kept open, with automatic checkpoints off: every
      // commit stays in the -wal file, so the proxy must read it from there.
      const db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('wal_autocheckpoint = 0');
      db.exec(GXPROXY2);
      walWriters.set(path, db);
      walWrite(path, { set: rows });
      return () => {
        walWriters.delete(path);
        db.close();
      };
    },
    modes: {
      "Galaxy's statements, never checkpointed": (ctx, from, to) => {
        const states = oneByOne(from, to, (c) => walWrite(ctx.path, c));
        assert.ok(statSync(`${ctx.path}-wal`).size > 0, 'the commits are in the WAL file');
        return states;
      },
      'burst of commits within milliseconds': (ctx, from, to) =>
        commitThrough(from, burstStates(from, to), (c) => walWrite(ctx.path, c)),
    },
  },
  'sqlite gxproxy (older Galaxy)': {
    file: 'session_map.sqlite',
    create: (path, rows) => {
      const writer = new OlderGalaxySqliteWriter(path);
      for (const [key, host, port] of rows) writer.addSession(key, host, port);
    },
    modes: {
      "older Galaxy's statements": (ctx, from, to) => {
        const writer = new OlderGalaxySqliteWriter(ctx.path);
        return oneByOne(from, to, ({ remove, set }) => {
          for (const key of remove ?? []) writer.removeSession(key);
          for (const [key, host, port] of set ?? []) {
            writer.removeSession(key);
            writer.addSession(key, host, port);
          }
        });
      },
      'rename over': (ctx, _from, to) => {
        writeSqliteMapFile(`${ctx.path}.new`, 'gxproxy', to);
        renameSync(`${ctx.path}.new`, ctx.path);
        return [];
      },
    },
  },
  json: jsonFormat((rows) => galaxyJson(rows), true),
  'json, oldest shape {"host:port": cookie}': jsonFormat((rows) => oldestGalaxyJson(rows), false),
};

/** Open WAL writer connections by map path. */
const walWriters = new Map<string, Database.Database>();

/** Galaxy's DELETE + INSERT (and plain DELETE) on the kept-open WAL connection. */
function walWrite(path: string, { remove, set }: { remove?: string[]; set?: Rows }): void {
  const db = walWriters.get(path)!;
  db.transaction(() => {
    for (const key of remove ?? []) db.prepare('DELETE FROM gxproxy2 WHERE key=?').run(key);
    for (const [key, host, port] of set ?? []) {
      db.prepare('DELETE FROM gxproxy2 WHERE key=?').run(key);
      db.prepare('INSERT INTO gxproxy2 (key, host, port, container_ids, container_interface) VALUES (?,?,?,?,?)').run(
        key,
        host,
        port,
        '["c0ffee"]',
        null,
      );
    }
  })();
}

/** How a scenario watches the proxy under test. */
interface ProxyUnderTest {
  readonly port: number;
  readonly logs: LogCapture;
  /** Resolves once `state` is what the proxy routes. */
  routes(state: State, rows: Rows, timeoutMs: number): Promise<void>;
}

async function startUpstreams(t: TestContext): Promise<Map<string, Upstream>> {
  const ups = await Promise.all(['u0', 'u1', 'u2', 'u3'].map((name) => startUpstream(name)));
  t.after(() => Promise.all(ups.map((u) => u.close())));
  return new Map(ups.map((u) => [u.name, u]));
}

/** Requests the `stable` session every few milliseconds until stopped; returns who answered each. */
function keepRequesting(port: number): { stop: () => Promise<string[]> } {
  let stopped = false;
  const answers: string[] = [];
  const running = (async () => {
    while (!stopped) {
      const r = await request(port, { headers: cookie('stable'), timeoutMs: 2000 });
      answers.push(r.status === 200 ? (JSON.parse(r.body) as Seen).upstream : `status ${r.status}`);
      await pace(5); // a steady trickle, not a load test
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await running;
      return answers;
    },
  };
}

/** Every session of `state` reaches its container; sessions it lacks get a 404. */
async function assertRouted(port: number, state: State): Promise<void> {
  for (const [key, name] of state) {
    const r = await request(port, { headers: cookie(key) });
    assert.equal(r.status, 200, `${key} is routed`);
    assert.equal((JSON.parse(r.body) as Seen).upstream, name, `${key} goes to ${name}`);
  }
  for (const key of ['s1', 's2', 's3']) {
    if (!state.has(key)) assert.equal((await request(port, { headers: cookie(key) })).status, 404, `${key} is gone`);
  }
}

async function scenario(
  t: TestContext,
  format: Format,
  mode: Mode,
  start: (path: string) => Promise<ProxyUnderTest>,
): Promise<void> {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const ups = await startUpstreams(t);
  const rowsOf = (s: State): Rows => [...s].map(([key, name]) => [key, '127.0.0.1', ups.get(name)!.port]);
  const path = join(tmp.dir, format.file);
  const cleanUp = format.create(path, rowsOf(A));
  if (cleanUp) t.after(cleanUp);
  const proxy = await start(path);
  await proxy.routes(A, rowsOf(A), ROUTED_WITHIN_MS);
  await assertRouted(proxy.port, A);

  const ctx: WriteContext = {
    path,
    failureDuring: async (reason, action) => {
      const seen = proxy.logs.next(MAP_LOG.unreadable, 3000, (l) => l.reason === reason);
      await action();
      await seen;
    },
  };
  const load = keepRequesting(proxy.port);
  const counts = new Set([A.size]);
  let from = A;
  for (const to of [B, C]) {
    const seen = await mode(ctx, rowsOf(from), rowsOf(to));
    for (const rows of seen) counts.add(rows.length);
    counts.add(to.size);
    const written = performance.now();
    await proxy.routes(to, rowsOf(to), ROUTED_WITHIN_MS);
    const ms = performance.now() - written;
    assert.ok(ms <= ROUTED_WITHIN_MS, `routed ${Math.round(ms)} ms after the write`);
    await assertRouted(proxy.port, to);
    from = to;
  }
  const answers = await load.stop();
  assert.ok(answers.length > 0);
  assert.deepEqual(new Set(answers), new Set(['u0']), 'the session present in every state always reached its container');
  for (const line of proxy.logs.withMsg(MAP_LOG.reloaded)) {
    assert.ok(counts.has(line.sessions as number), `a reload counted ${String(line.sessions)} sessions: not a state that was written`);
  }
}

/** The in-process proxy (reading on its reader thread, as every daemon does); `routes` watches its route table after each log line. */
async function inProcess(t: TestContext, path: string): Promise<ProxyUnderTest> {
  const proxy = await startInProcessProxy(t, { sessionsPath: path });
  return {
    port: proxy.port,
    logs: proxy.logs,
    routes: async (state, rows, timeoutMs) => {
      const matches = (): boolean =>
        proxy.daemon.table.size === state.size && rows.every(([key, , port]) => proxy.daemon.table.lookup(key)?.port === port);
      await proxy.logs.waitFor(matches, timeoutMs);
    },
  };
}

for (const [formatName, format] of Object.entries(FORMATS)) {
  for (const [modeName, mode] of Object.entries(format.modes)) {
    test(`${formatName}, ${modeName}: the final state is routed within 1 s, no broken state replaces a good map`, (t) =>
      scenario(t, format, mode, (path) => inProcess(t, path)));
  }
}

/** The spawned lib/main.js; `routes` waits for a reload line counting the state's sessions. */
async function spawned(t: TestContext, path: string): Promise<ProxyUnderTest> {
  const { proc: child, port } = await startSpawnedProxy(t, path);
  let from = 0;
  return {
    port,
    logs: child.logs,
    routes: async (state, _rows, timeoutMs) => {
      // Counts differ between the states written here, so the count names the state.
      await child.logs.waitFor((l) => l.msg === MAP_LOG.reloaded && l.sessions === state.size, timeoutMs, from);
      from = child.logs.lines.length;
    },
  };
}

test('the real process (lib/main.js): json truncate-and-write, and sqlite in WAL mode', async (t) => {
  const json = FORMATS.json;
  const wal = FORMATS['sqlite gxproxy2 in WAL mode'];
  await t.test('json', (t) => scenario(t, json, json.modes['truncate-and-write'], (path) => spawned(t, path)));
  await t.test('wal', (t) => scenario(t, wal, wal.modes["Galaxy's statements, never checkpointed"], (path) => spawned(t, path)));
});
