/**
 * Galaxy's writer in its own process, as in production: reads one JSON command
 * per line on stdin, writes the map in the format named on the command line
 * (see MapFormat) the way Galaxy does, and answers one JSON line `{ ok, at }`
 * per command, `at` being the wall-clock time (ms, sub-ms precision) right
 * after the write. Used where the writer must not share the proxy's event
 * loop (stall figures).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { GalaxySqliteWriter, OlderGalaxySqliteWriter, galaxyJson, oldestGalaxyJson, writeSqliteMapFile } from './galaxy-map.js';
import { sessionKey, type MapFormat, type WriterCommand } from './galaxy-writer-process.js';

type Rows = [string, string, number][];

interface Store {
  add(key: string, host: string, port: number): void;
  update(key: string, host: string, port: number): void;
  remove(key: string): void;
  addMany(rows: Rows): void;
  exec(sql: string): void;
}

function sqliteStore(path: string): Store {
  const writer = new GalaxySqliteWriter(path);
  return {
    add: (k, h, p) => writer.addSession(k, h, p),
    update: (k, h, p) => writer.updateSession(k, h, p),
    remove: (k) => writer.removeSession(k),
    addMany: (rows) => writer.addMany(rows),
    exec: (sql) => writer.exec(sql),
  };
}

function olderSqliteStore(path: string): Store {
  const writer = new OlderGalaxySqliteWriter(path);
  return {
    add: (k, h, p) => writer.addSession(k, h, p),
    update: (k, h, p) => {
      writer.removeSession(k);
      writer.addSession(k, h, p);
    },
    remove: (k) => writer.removeSession(k),
    addMany: (rows) => {
      if (existsSync(path)) for (const [k, h, p] of rows) writer.addSession(k, h, p);
      else writeSqliteMapFile(path, 'gxproxy', rows); // one transaction: 100,000 commits would take minutes
    },
    exec: () => {
      throw new Error('exec is for the gxproxy2 writer');
    },
  };
}

/** Galaxy's JSON writer: the whole map in memory, the file truncated and rewritten on every change. */
function jsonStore(path: string, serialise: (rows: Rows) => string): Store {
  const map = new Map<string, [string, string, number]>();
  const write = (): void => writeFileSync(path, serialise([...map.values()]));
  return {
    add: (k, h, p) => {
      map.delete(k);
      map.set(k, [k, h, p]);
      write();
    },
    update: (k, h, p) => {
      map.set(k, [k, h, p]);
      write();
    },
    remove: (k) => {
      map.delete(k);
      write();
    },
    addMany: (rows) => {
      for (const row of rows) map.set(row[0], row);
      write();
    },
    exec: () => {
      throw new Error('exec is for the gxproxy2 writer');
    },
  };
}

const path = process.argv[2];
const format = (process.argv[3] ?? 'gxproxy2') as MapFormat;
const store =
  format === 'gxproxy2'
    ? sqliteStore(path)
    : format === 'gxproxy'
      ? olderSqliteStore(path)
      : jsonStore(path, format === 'json' ? galaxyJson : oldestGalaxyJson);
const now = (): number => performance.timeOrigin + performance.now();

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as WriterCommand;
  try {
    if (cmd.op === 'add') store.add(cmd.key, cmd.host, cmd.port);
    else if (cmd.op === 'update') store.update(cmd.key, cmd.host, cmd.port);
    else if (cmd.op === 'remove') store.remove(cmd.key);
    else if (cmd.op === 'many') store.addMany(cmd.entries);
    else if (cmd.op === 'fill') {
      // The oldest JSON shape is keyed by host:port, so each session gets its own address there.
      const host = (i: number): string => (format === 'json-oldest' ? `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}` : cmd.host);
      store.addMany(Array.from({ length: cmd.count }, (_, i): [string, string, number] => [sessionKey(i), host(i), cmd.port]));
    } else store.exec(cmd.sql);
    process.stdout.write(`${JSON.stringify({ ok: true, at: now() })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: String(err) })}\n`);
  }
}
