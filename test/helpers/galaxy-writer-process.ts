import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export type WriterCommand =
  | { op: 'add'; key: string; host: string; port: number }
  | { op: 'update'; key: string; host: string; port: number }
  | { op: 'remove'; key: string }
  | { op: 'many'; entries: [string, string, number][] }
  /** `count` sessions keyed `sessionKey(0..count-1)`, in one transaction. */
  | { op: 'fill'; count: number; host: string; port: number }
  /** SQL on a fresh Galaxy-style connection (gxproxy2 only), e.g. `PRAGMA journal_mode=WAL`. */
  | { op: 'exec'; sql: string };

/** The map formats the writer can write, as Galaxy's writers of each era did. */
export type MapFormat = 'gxproxy2' | 'gxproxy' | 'json' | 'json-oldest';

/** The key of the i-th generated session: 32 hex-like characters, as Galaxy's are. */
export function sessionKey(i: number): string {
  return `${i.toString(16).padStart(8, '0')}${'5f3c9a7e'.repeat(3)}`;
}

const CHILD = fileURLToPath(new URL('./galaxy-writer-child.ts', import.meta.url));

/**
 * A helper script in a child process that takes one JSON command per line on
 * stdin and answers each with one JSON line `{ ok, at }` (or `{ ok: false, error }`).
 */
export class CommandChild<C extends { op: string }> {
  private readonly child: ChildProcess;
  private readonly replies: ((line: string) => void)[] = [];

  constructor(script: string, args: string[], private readonly what: string) {
    this.child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.replies.shift()?.(line));
  }

  /** Runs one command; resolves with the commit time (ms since epoch, sub-ms precision). */
  send(cmd: C, timeoutMs = 10_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.what} did not answer ${cmd.op} within ${timeoutMs} ms`)), timeoutMs);
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

/**
 * Galaxy's writer running in a separate process (so that its synchronous
 * writes do not block the proxy under test), for any map format. Each
 * command resolves with the wall-clock time of its commit or rewrite.
 */
export class GalaxyWriterProcess extends CommandChild<WriterCommand> {
  constructor(path: string, format: MapFormat = 'gxproxy2') {
    super(CHILD, [path, format], 'writer');
  }
}
