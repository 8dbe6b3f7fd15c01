import { readFileSync } from 'node:fs';
import { LogCapture, type LogLine } from './logs.js';
import { waitUntil } from './wait.js';

/** The JSON log lines in a file another process writes (empty while it does not exist). */
export function readLogFile(path: string): LogLine[] {
  const capture = new LogCapture();
  try {
    capture.feed(`${readFileSync(path, 'utf8')}\n`);
  } catch {
    // not written yet
  }
  return capture.lines;
}

/** Waits until the log file holds `count` lines that match, and returns them. */
export function waitForLogLines(path: string, match: (line: LogLine) => boolean, count = 1, timeoutMs = 10_000): Promise<LogLine[]> {
  return waitUntil(`${count} matching line(s) in ${path}`, () => {
    const lines = readLogFile(path).filter(match);
    return lines.length >= count ? lines : undefined;
  }, { timeoutMs, everyMs: 50 });
}
