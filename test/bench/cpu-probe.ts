/**
 * CPU-speed probe, run by the bench as its own process pinned to the core the
 * servers run on. For each line on stdin it times a fixed SHA-256 loop a few
 * times and prints the fastest time in milliseconds: the fastest of several
 * short samples is the core's speed, unaffected by a brief preemption (which
 * the bench detects separately, from /proc/stat).
 */
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';

const BLOCK = Buffer.alloc(4096, 0x5a);
const HASHES = 400;
const SAMPLES = 7;

function sample(): number {
  const t0 = process.hrtime.bigint();
  let digest = BLOCK;
  for (let i = 0; i < HASHES; i++) digest = createHash('sha256').update(BLOCK).update(digest).digest();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

sample(); // warm-up: JIT and OpenSSL's first call
createInterface({ input: process.stdin }).on('line', () => {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < SAMPLES; i++) best = Math.min(best, sample());
  process.stdout.write(`${best.toFixed(4)}\n`);
});
process.stdin.on('end', () => process.exit(0));
