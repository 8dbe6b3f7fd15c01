import { Writable } from 'node:stream';

/** A parsed pino JSON line. */
export type LogLine = Record<string, unknown> & { level: string; msg: string };

interface Waiter {
  match: (line: LogLine) => boolean;
  resolve: (line: LogLine) => void;
}

/**
 * Collects JSON log lines (from an in-process pino destination or a child's
 * stdout) and lets tests wait for one, bounded by a timeout.
 */
export class LogCapture {
  readonly lines: LogLine[] = [];
  private waiters: Waiter[] = [];
  private partial = '';

  /** A pino destination that feeds this capture. */
  readonly stream = new Writable({
    write: (chunk: Buffer, _enc, done) => {
      this.feed(chunk.toString('utf8'));
      done();
    },
  });

  /** Feeds raw text that may hold several or partial lines. */
  feed(text: string): void {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    for (const raw of parts) {
      if (raw.trim() === '') continue;
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
      } catch {
        line = { level: 'raw', msg: raw };
      }
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(line)) return true;
        w.resolve(line);
        return false;
      });
    }
  }

  /** Lines logged with this message. */
  withMsg(msg: string): LogLine[] {
    return this.lines.filter((l) => l.msg === msg);
  }

  /**
   * Resolves with the first line (counting from `from`, an index into
   * `lines`) that matches; rejects after `timeoutMs`.
   */
  waitFor(match: (line: LogLine) => boolean, timeoutMs = 3000, from = 0): Promise<LogLine> {
    const existing = this.lines.slice(from).find(match);
    if (existing !== undefined) return Promise.resolve(existing);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a log line; saw:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}`));
      }, timeoutMs);
      const waiter: Waiter = {
        match,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Waits for the next line with message `msg` logged after now. */
  next(msg: string, timeoutMs = 3000, extra: (line: LogLine) => boolean = () => true): Promise<LogLine> {
    return this.waitFor((l) => l.msg === msg && extra(l), timeoutMs, this.lines.length);
  }
}
