import { setTimeout as delay } from 'node:timers/promises';

/**
 * Re-checks `check` every `everyMs` until it returns something other than
 * undefined/false, for states that announce themselves with no event (another
 * process's status, a file another process writes). Rejects after `timeoutMs`
 * with `what` and the last value seen.
 */
export async function waitUntil<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  { timeoutMs = 5000, everyMs = 25 }: { timeoutMs?: number; everyMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      last = await check();
      if (last !== undefined && last !== false) return last as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${String(last)}`);
    await delay(everyMs);
  }
}
