import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./container-main.ts', import.meta.url));

/** A container stand-in running in its own process (test/helpers/container-main.ts). */
export class ContainerProcess {
  port = 0;
  private output = '';

  private constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (c: Buffer) => (this.output += c.toString('utf8')));
  }

  /** Starts one and kills it in t.after. */
  static async start(t: { after: (fn: () => unknown) => void }): Promise<ContainerProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN], { stdio: ['ignore', 'pipe', 'inherit'] });
    const container = new ContainerProcess(child);
    t.after(() => container.kill());
    const first = await container.line((l) => l.startsWith('{'), 15_000);
    container.port = (JSON.parse(first) as { port: number }).port;
    return container;
  }

  /** Waits for a marker line (e.g. `upload-started`), bounded. */
  waitFor(marker: string, timeoutMs = 5000): Promise<void> {
    return this.line((l) => l === marker, timeoutMs).then(() => undefined);
  }

  /** SIGKILL, as when Docker kills a container; resolves once it is gone. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGKILL');
    await exited;
  }

  private line(match: (line: string) => boolean, timeoutMs: number): Promise<string> {
    const find = (): string | undefined => this.output.split('\n').slice(0, -1).find(match);
    const found = find();
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`container process: no matching line within ${timeoutMs} ms; got ${JSON.stringify(this.output)}`)), timeoutMs);
      const check = (): void => {
        const hit = find();
        if (hit === undefined) return;
        clearTimeout(timer);
        this.child.stdout?.off('data', check);
        resolve(hit);
      };
      this.child.stdout?.on('data', check);
    });
  }
}
