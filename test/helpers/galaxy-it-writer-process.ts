import { fileURLToPath } from 'node:url';
import type { EntryPointWrite, GalaxyItWriterKind } from './galaxy-it-map.js';
import { CommandChild } from './galaxy-writer-process.js';

export type ItWriterCommand =
  | { op: 'save'; entry: EntryPointWrite }
  | { op: 'remove'; key: string; keyType?: string }
  /** `count` entry points `entryPointKey(0..count-1)` in one transaction. */
  | { op: 'fill'; count: number; host: string; port: number };

const CHILD = fileURLToPath(new URL('./galaxy-it-writer-child.ts', import.meta.url));

/**
 * Galaxy's Interactive Tools writer running in a separate process (its
 * synchronous commits must not block the proxy under test, and the
 * SQLAlchemy writer keeps its connection open in another process, as Galaxy
 * does). Each command resolves with the wall-clock time of its commit.
 */
export class GalaxyItWriterProcess extends CommandChild<ItWriterCommand> {
  constructor(path: string, kind: GalaxyItWriterKind) {
    super(CHILD, [path, kind], 'Galaxy IT writer');
  }
}
