import type { Writable } from 'node:stream';

const CHUNK = Buffer.alloc(64 * 1024, 0x61);

/**
 * Writes `bytes` bytes to `stream` in 64 KiB chunks, only as fast as it
 * drains (never more than one chunk beyond its buffer), then ends it.
 */
export function writeBytes(stream: Writable, bytes: number): void {
  let left = bytes;
  const pump = (): void => {
    while (left > 0) {
      const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
      left -= piece.length;
      if (!stream.write(piece)) {
        stream.once('drain', pump);
        return;
      }
    }
    stream.end();
  };
  pump();
}
