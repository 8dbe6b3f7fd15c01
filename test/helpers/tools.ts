import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { TestContext } from 'node:test';

/** The absolute path of an executable on PATH (or in /usr/sbin, where daemons live), or undefined. */
export function which(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin']) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * The path of a tool a deployment test needs. Where it is missing the test is
 * skipped with the reason and the install command, except in CI (CI=true),
 * where .ci/run installs it and a missing tool is a failure.
 */
export function requireTool(t: TestContext, name: string, install: string): string | undefined {
  const path = which(name);
  if (path !== undefined) return path;
  const reason = `${name} is not installed (${install})`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI must have it: see .ci/run`);
  t.skip(reason);
  return undefined;
}
