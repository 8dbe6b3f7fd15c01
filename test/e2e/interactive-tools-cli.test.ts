import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { GX_IT_PROXY_JS, MAIN_JS } from '../helpers/child.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };

async function cli(script: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [script, ...args], { timeout: 10_000, env: { ...process.env, COLUMNS: '80' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('package.json has both front doors, each an executable entry of the same CLI', async () => {
  assert.equal(PKG.bin['galaxy-gie-proxy'], 'bin/galaxy-gie-proxy.js');
  assert.equal(PKG.bin['gx-it-proxy'], 'bin/gx-it-proxy.js');
  const { stdout } = await run(process.execPath, [join(ROOT, 'bin', 'gx-it-proxy.js'), '-V'], { timeout: 10_000 });
  assert.equal(stdout.trim(), PKG.version);
});

test('the two commands take the same flags and differ only in name, description and the --sessions default', async () => {
  const gie = await cli(MAIN_JS, ['--help']);
  const it = await cli(GX_IT_PROXY_JS, ['--help']);
  assert.equal(gie.code, 0);
  assert.equal(it.code, 0);
  const flags = (help: string): string[] => [...help.matchAll(/^ {2}(-[^\s,]+(?:, --\S+)?)/gm)].map((m) => m[1] as string);
  assert.deepEqual(flags(it.stdout), flags(gie.stdout));
  for (const flag of ['--ip', '--port', '--sessions', '--pollingInterval', '--proxyPathPrefix', '--forwardIP', '--forwardPort', '--reverseProxy', '--verbose', '-V, --version', '-h, --help']) {
    assert.ok(flags(it.stdout).includes(flag), `gx-it-proxy 0.2.3's ${flag}`);
  }
  assert.match(it.stdout, /^Usage: gx-it-proxy \[options\]/);
  assert.match(it.stdout, /none:\s+header mode/);
  assert.doesNotMatch(it.stdout, /session_map\.sqlite/);
  assert.match(gie.stdout, /\(default:\s+"database\/session_map\.sqlite"\)/);
});

test('bad Interactive Tools flags are usage errors (exit 2) that name the flag', async () => {
  for (const [args, message] of [
    [['--forwardPort', '0'], /--forwardPort/],
    [['--forwardPort', 'x'], /--forwardPort/],
    [['--pollingInterval', 'x'], /--pollingInterval/],
    [['--proxyPathPrefix', '/a b'], /option '--proxyPathPrefix <path>' argument '\/a b' is invalid\. must be a URL path/],
    [['--header-mode-allow', '10.0.0.0/33'], /option '--header-mode-allow <targets>' argument '10\.0\.0\.0\/33' is invalid\. "10\.0\.0\.0\/33" has a prefix length/],
    [['--header-mode-allow', 'a,host:99999'], /"host:99999" has a port/],
  ] as const) {
    const { code, stderr } = await cli(GX_IT_PROXY_JS, [...args]);
    assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
    assert.match(stderr, message);
  }
  const check = await cli(GX_IT_PROXY_JS, ['--check']);
  assert.equal(check.code, 2);
  assert.match(check.stderr, /--check needs --sessions/);
});
