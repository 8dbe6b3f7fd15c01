import { lstatSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBounded } from './processes.js';

/** The root of this tree (where package.json is). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The package's name and version, as npm pack names the tarball. */
export const PACKAGE = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { name: string; version: string };

/**
 * The environment for an npm started by a test: without the npm_* variables
 * of the `npm test` that runs the suite, so the child npm reads only its own
 * configuration (and `extra`).
 */
export function npmEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value;
  return { ...env, ...extra };
}

/** A tarball made by `npm pack` from this tree. */
export interface PackedTarball {
  /** Absolute path of the .tgz. */
  path: string;
  filename: string;
  /** Paths inside the package, as `npm pack --json` lists them. */
  files: string[];
}

/**
 * Packs this tree with `npm pack` into `dir`. Scripts are skipped: `npm test`
 * has just built lib/, and rebuilding it here would rewrite files other test
 * files are running.
 */
export async function packTarball(dir: string): Promise<PackedTarball> {
  const { stdout } = await runBounded('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: REPO_ROOT,
    env: npmEnv(),
    timeoutMs: 60_000,
  });
  const [info] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  return { path: join(dir, info.filename), filename: info.filename, files: info.files.map((f) => f.path) };
}

let caching: Promise<string> | undefined;
/**
 * npm's cache for the tests that run npx: private to this tree (in
 * node_modules/.cache, removed by `npm ci`), with npm's own downloads linked
 * in so that no download is repeated. npx installs into `<cache>/_npx/<hash>`.
 */
export function npxCache(): Promise<string> {
  caching ??= (async () => {
    const dir = join(REPO_ROOT, 'node_modules', '.cache', 'galaxy-gie-proxy-tests', 'npm');
    mkdirSync(dir, { recursive: true });
    const userCache = (await runBounded('npm', ['config', 'get', 'cache'], { env: npmEnv(), timeoutMs: 30_000 })).stdout.trim();
    for (const name of ['_cacache', '_prebuilds']) {
      if (exists(join(dir, name)) || !exists(join(userCache, name))) continue;
      symlinkSync(join(userCache, name), join(dir, name));
    }
    return dir;
  })();
  return caching;
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
