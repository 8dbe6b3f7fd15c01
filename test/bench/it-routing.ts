import { spawnSync } from 'node:child_process';
import { MAIN_JS } from '../helpers/child.js';
import type { BenchContext, Spread } from './context.js';

/**
 * The bench's place for Interactive Tools routing (issue 10): requests/s of
 * the proxy routing by entry point (host and path, `--proxyPathPrefix`)
 * against the same proxy routing by cookie, interleaved, at 1 and at
 * `sessions` entry points. Until the built CLI has IT routing this reports
 * "not run"; when it lands, fill in `measure` below: write an IT map with
 * Galaxy's statements (test/helpers), start the proxy with the IT flags via
 * `startProxy(..., extraArgs)`, and run `interleavedRounds` with LoadTargets
 * carrying `host` (host routing) or `path` (path routing) and no cookie.
 * A PostgreSQL map (issue 11) plugs in the same way: a second large-map proxy
 * started on the PostgreSQL map, with the commit → routed and stall phases
 * run against it (see commit-latency.ts and churn.ts, which take a writer).
 */
export interface ItRoutingResult {
  readonly figures: { readonly small: Spread; readonly big: Spread } | undefined;
  readonly report: string;
}

/** True when the built CLI routes Interactive Tools (its --help names the path-prefix flag). */
export function cliHasItRouting(): boolean {
  const { stdout } = spawnSync(process.execPath, [MAIN_JS, '--help'], { encoding: 'utf8' });
  return /--proxyPathPrefix|--proxy-path-prefix/i.test(stdout ?? '');
}

export async function itRoutingPhase(ctx: BenchContext, _setup: { backendPort: number; sessions: number }): Promise<ItRoutingResult> {
  if (!cliHasItRouting()) {
    const report = 'not run: the proxy built from this tree has no Interactive Tools routing yet (issue 10); see test/bench/it-routing.ts';
    ctx.progress(`  ${report}`);
    return { figures: undefined, report };
  }
  const report = 'not run: the CLI has IT routing, but test/bench/it-routing.ts does not measure it yet';
  ctx.progress(`  ${report}`);
  return { figures: undefined, report };
}
