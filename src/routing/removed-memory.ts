import { createHmac, randomBytes } from 'node:crypto';

/**
 * A bounded memory of routes Galaxy removed while this process ran, so that
 * a browser can be told "this tool has stopped" instead of "not found". Only
 * a keyed hash (HMAC-SHA-256 under a key made at start and never written
 * anywhere) of the key and its token is kept: a dump of the process's memory
 * gives no token, and a hash cannot be checked without the key.
 */

/** What a remembered route was: an Interactive Tools entry point (key and token) or a GIE session (cookie value). */
type RemovedKind = 'entry-point' | 'session';

/** How many removed routes are remembered (the oldest forgotten first). */
const REMOVED_CAPACITY = 10_000;
/** How long a removed route is remembered. */
const REMOVED_TTL_MS = 24 * 60 * 60 * 1000;

export class RemovedMemory {
  private readonly secret = randomBytes(32);
  /** Hash → when it was removed (ms); insertion order is age order. */
  private readonly removed = new Map<string, number>();

  constructor(
    private readonly capacity = REMOVED_CAPACITY,
    private readonly ttlMs = REMOVED_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Remembers that `key` (with `token`, for an entry point) was removed now. */
  remember(kind: RemovedKind, key: string, token = ''): void {
    const hash = this.hash(kind, key, token);
    this.removed.delete(hash); // removed again: it moves to the young end
    this.removed.set(hash, this.now());
    if (this.removed.size > this.capacity) this.removed.delete(this.removed.keys().next().value as string);
  }

  /** True when `key` with exactly this `token` was removed less than the TTL ago. */
  has(kind: RemovedKind, key: string, token = ''): boolean {
    const hash = this.hash(kind, key, token);
    const at = this.removed.get(hash);
    if (at === undefined) return false;
    if (this.now() - at <= this.ttlMs) return true;
    this.removed.delete(hash);
    return false;
  }

  get size(): number {
    return this.removed.size;
  }

  private hash(kind: RemovedKind, key: string, token: string): string {
    // Lengths first, so that no key/token split of the same bytes collides.
    return createHmac('sha256', this.secret).update(`${kind}:${key.length}:${token.length}:`).update(key).update(token).digest('base64url');
  }
}
