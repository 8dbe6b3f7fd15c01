import type { GalaxySqliteWriter } from '../helpers/galaxy-map.js';
import { newSessionKey, type BenchContext } from './context.js';
import { waitUntilIdle } from './proc-stats.js';
import { loadRound, type LoadTarget, type Round } from './rounds.js';

/** How often Galaxy writes a session during the "busy" rounds. */
export const INSERT_EVERY_MS = 500;

/**
 * Latency under load while Galaxy keeps writing to a large map (each write
 * makes the proxy re-read it) against the same load with no writes,
 * interleaved: quiet, busy, quiet, busy, … Each quiet round starts once the
 * proxy has gone idle.
 */
export async function latencyUnderChurn(
  ctx: BenchContext,
  target: LoadTarget,
  writer: GalaxySqliteWriter,
  backendPort: number,
): Promise<{ quiet: Round[]; busy: Round[]; inserts: number }> {
  // Long enough rounds for several writes each.
  const shape = { seconds: Math.max(4, ctx.seconds), connections: ctx.connections };
  const quiet: Round[] = [];
  const busy: Round[] = [];
  let inserts = 0;
  for (let i = 0; i < ctx.rounds; i++) {
    ctx.progress(` round ${i + 1}/${ctx.rounds}: no writes, then a write every ${INSERT_EVERY_MS} ms`);
    // The writes of the previous round may still be being read (and their
    // garbage collected): "no writes" means an idle map, not the tail of a burst.
    const waited = await waitUntilIdle(target.cpuPid);
    if (waited !== 0) ctx.progress(`  waited ${waited < 0 ? 'in vain' : `${waited} ms`} for the proxy to go idle`);
    quiet.push(await loadRound(ctx, { ...target, name: `${target.name} quiet` }, shape));
    let failure: unknown;
    const timer = setInterval(() => {
      try {
        writer.addSession(newSessionKey(), '127.0.0.1', backendPort);
        inserts++;
      } catch (err) {
        failure ??= err;
      }
    }, INSERT_EVERY_MS);
    try {
      busy.push(await loadRound(ctx, { ...target, name: `${target.name} busy` }, shape));
    } finally {
      clearInterval(timer);
    }
    if (failure !== undefined) throw failure;
  }
  return { quiet, busy, inserts };
}
