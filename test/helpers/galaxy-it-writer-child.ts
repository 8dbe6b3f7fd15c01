/**
 * One of Galaxy's Interactive Tools writers in its own process, as in
 * production: reads one JSON command per line on stdin, writes `gxitproxy`
 * the way the Galaxy generation named on the command line does, and answers
 * one JSON line `{ ok, at }` per command, `at` being the wall-clock time (ms,
 * sub-ms precision) right after the commit.
 */
import { createInterface } from 'node:readline';
import { entryPointKey, galaxyItWriter, type GalaxyItWriterKind } from './galaxy-it-map.js';
import type { ItWriterCommand } from './galaxy-it-writer-process.js';

const path = process.argv[2] as string;
const kind = (process.argv[3] ?? 'sqlalchemy') as GalaxyItWriterKind;
const writer = galaxyItWriter(kind, path);
const now = (): number => performance.timeOrigin + performance.now();

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as ItWriterCommand;
  try {
    if (cmd.op === 'save') writer.save(cmd.entry);
    else if (cmd.op === 'remove') writer.remove(cmd.key, cmd.keyType);
    else if (cmd.op === 'fill') {
      writer.saveMany(Array.from({ length: cmd.count }, (_, i) => ({ ...entryPointKey(i), host: cmd.host, port: cmd.port })));
    }
    process.stdout.write(`${JSON.stringify({ ok: true, at: now() })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: String(err) })}\n`);
  }
}
writer.close();
