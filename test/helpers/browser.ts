import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium: the browser the test drives (playwright-core never downloads one). */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Flags for a headless Chromium that talks to nothing but the pages it is
 * sent to: no QUIC, sync, component updates or background fetches.
 */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Launches the system Chromium headless with a fresh profile in `dir`
 * (playwright passes it as --user-data-dir); closed in t.after.
 */
export async function launchChromium(t: TestContext, dir: string): Promise<BrowserContext> {
  const context = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
  t.after(() => context.close());
  return context;
}

/** One named step of a browser test and how long it took. */
export interface StepTiming {
  readonly step: string;
  readonly ms: number;
}

/**
 * Runs browser steps one after another, timing each. When a step fails, the
 * page it names is saved as a PNG in a temp dir (kept, its path reported)
 * before the error goes on.
 */
export class BrowserSteps {
  readonly timings: StepTiming[] = [];
  private shots: string | undefined;

  constructor(private readonly t: TestContext) {}

  async run<T>(step: string, page: () => Page | undefined, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await fn();
      const ms = Math.round(performance.now() - started);
      this.timings.push({ step, ms });
      this.t.diagnostic(`step ${JSON.stringify(step)}: ${ms} ms`);
      return result;
    } catch (err) {
      const shown = page();
      if (shown !== undefined && !shown.isClosed()) {
        this.shots ??= mkdtempSync(join(tmpdir(), 'gie-browser-failure-'));
        const path = join(this.shots, `${this.timings.length + 1}-${step.replace(/[^a-z0-9]+/gi, '-')}.png`);
        try {
          await shown.screenshot({ path, fullPage: true, timeout: 10_000 });
          this.t.diagnostic(`screenshot of the failed step ${JSON.stringify(step)}: ${path}`);
          console.error(`browser test: screenshot of the failed step ${JSON.stringify(step)} (${shown.url()}): ${path}`);
        } catch (shotErr) {
          console.error(`browser test: no screenshot of the failed step ${JSON.stringify(step)}: ${String(shotErr)}`);
        }
      }
      throw err;
    }
  }
}
