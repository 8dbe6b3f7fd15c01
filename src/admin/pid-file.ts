import { readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';

/** The pid file could not be written. */
export class PidFileError extends Error {
  override readonly name = 'PidFileError';
  readonly code = 'ERR_GIE_PID_FILE';
  constructor(
    readonly path: string,
    options: { cause: NodeJS.ErrnoException },
  ) {
    super(`cannot write the pid file ${path}: ${options.cause.code ?? options.cause.message} (check that its directory exists and is writable)`, options);
  }
}

/**
 * Writes `pid` to `path`. The file is written beside its final name and
 * renamed into place, so a reader never sees it empty or half-written.
 * Throws PidFileError.
 */
export function writePidFile(path: string, pid: number): void {
  const temporary = `${path}.${pid}.tmp`;
  try {
    writeFileSync(temporary, `${pid}\n`, { mode: 0o644 });
    renameSync(temporary, path);
  } catch (err) {
    rmSync(temporary, { force: true });
    throw new PidFileError(path, { cause: err as NodeJS.ErrnoException });
  }
}

/**
 * Removes `path` if it still holds `pid`: a file another instance has since
 * written is left alone. Never throws (it runs while the process exits).
 */
export function removePidFile(path: string, pid: number): void {
  try {
    if (readFileSync(path, 'utf8').trim() === String(pid)) unlinkSync(path);
  } catch {
    // Already gone or unreadable: nothing to clean up.
  }
}
