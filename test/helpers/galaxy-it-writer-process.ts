import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { EntryPointWrite, GalaxyItWriterKind } from './galaxy-it-map.js';

export type ItWriterCommand =
  | { op: 'save'; entry: EntryPointWrite }
  | { op: 'remove'; key: string; keyType?: string }
  /** `count` entry points `entryPointKey(0..count-1)` in one transaction. */
  | { op: 'fill'; count: number; host: string; port: number };

const CHILD = fileURLToPath(new URL('./galaxy-it-writer-child.ts', import.meta.url));

/**
 * Galaxy's Interactive Tools writer running in a separate process (its
 * synchronous commits must not block the proxy under test, and the
 * SQLAlchemy writer keeps its connection open in another process, as Galaxy
 * does). Each command resolves with the wall-clock time of its commit.
 */
export class GalaxyItWriterProcess {
  private readonly child: ChildProcess;
  private readonly replies: ((line: string) => void)[] = [];

  constructor(path: string, kind: GalaxyItWriterKind) {
    this.child = spawn(process.execPath, ['--import', 'tsx', CHILD, path, kind], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.replies.shift()?.(line));
  }

  /** Runs one command; resolves with the commit time (ms since epoch, sub-ms precision). */
  send(cmd: ItWriterCommand, timeoutMs = 30_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Galaxy IT writer did not answer ${cmd.op} within ${timeoutMs} ms`)), timeoutMs);
      this.replies.push((line) => {
        clearTimeout(timer);
        const reply = JSON.parse(line) as { ok: boolean; at?: number; error?: string };
        if (reply.ok) resolve(reply.at as number);
        else reject(new Error(reply.error));
      });
      this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
    });
  }

  close(): void {
    this.child.stdin?.end();
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}
