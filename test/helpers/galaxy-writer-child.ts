/**
 * Galaxy's writer in its own process, as in production: reads one JSON command
 * per line on stdin, writes the SQLite map with Galaxy's statements
 * (GalaxySqliteWriter) and answers one JSON line `{ ok, at }` per command,
 * `at` being the wall-clock time (ms, sub-ms precision) right after the commit.
 * Used where the writer must not share the proxy's event loop (stall figures).
 */
import { createInterface } from 'node:readline';
import { GalaxySqliteWriter } from './galaxy-map.js';
import { sessionKey, type WriterCommand } from './galaxy-writer-process.js';

const writer = new GalaxySqliteWriter(process.argv[2] as string);
const now = (): number => performance.timeOrigin + performance.now();

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as WriterCommand;
  try {
    if (cmd.op === 'add') writer.addSession(cmd.key, cmd.host, cmd.port);
    else if (cmd.op === 'update') writer.updateSession(cmd.key, cmd.host, cmd.port);
    else if (cmd.op === 'remove') writer.removeSession(cmd.key);
    else if (cmd.op === 'many') writer.addMany(cmd.entries);
    else if (cmd.op === 'fill') writer.addMany(Array.from({ length: cmd.count }, (_, i): [string, string, number] => [sessionKey(i), cmd.host, cmd.port]));
    else writer.exec(cmd.sql);
    process.stdout.write(`${JSON.stringify({ ok: true, at: now() })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: String(err) })}\n`);
  }
}
