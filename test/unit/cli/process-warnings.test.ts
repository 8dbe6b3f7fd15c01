import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from '../../helpers/package.js';
import { runBounded } from '../../helpers/processes.js';

const MODULE = fileURLToPath(new URL('../../../src/cli/process-warnings.ts', import.meta.url));
const LOG = fileURLToPath(new URL('../../../src/log.ts', import.meta.url));

/**
 * In a child process (the handler replaces the process's own warning
 * output): a deprecation twice, a MaxListenersExceededWarning and an
 * experimental warning, each with its code.
 */
const SCRIPT = `
import { EventEmitter } from 'node:events';
import { logProcessWarnings } from ${JSON.stringify(MODULE)};
import { createLogger } from ${JSON.stringify(LOG)};
logProcessWarnings(createLogger({ verbose: false }));
process.emitWarning('old API', { type: 'DeprecationWarning', code: 'DEP0999' });
process.emitWarning('old API again', { type: 'DeprecationWarning', code: 'DEP0999' });
process.emitWarning('new feature', { type: 'ExperimentalWarning', code: 'EXP_TEST' });
const emitter = new EventEmitter();
for (let i = 0; i < 12; i++) emitter.on('x', () => {});
`;

test('Node process warnings become one pino warn line per code, and nothing reaches stderr', async () => {
  const { stdout, stderr } = await runBounded(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], { cwd: REPO_ROOT, timeoutMs: 30_000 });
  assert.equal(stderr, '');
  const lines = stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    lines.map((l) => [l.level, l.code, l.type, l.msg]),
    [
      ['warn', 'DEP0999', 'DeprecationWarning', 'Node.js process warning (logged once per code)'],
      ['warn', 'EXP_TEST', 'ExperimentalWarning', 'Node.js process warning (logged once per code)'],
      ['warn', 'MaxListenersExceededWarning', 'MaxListenersExceededWarning', 'Node.js process warning (logged once per code)'],
    ],
  );
  assert.equal(lines[0].detail, 'old API');
});
