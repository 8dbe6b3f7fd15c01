import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MASK, MASKED_QUERY_PARAMS, createLogger, maskQuery } from '../../src/log.js';
import { LogCapture } from '../helpers/logs.js';

const DEFAULT = new Set(MASKED_QUERY_PARAMS);

test('maskQuery masks token and _xsrf in Jupyter\'s URL shapes and keeps everything else in order', () => {
  const cases: [string, string][] = [
    ['/user/x/lab?token=0f1e2d3c', `/user/x/lab?token=${MASK}`],
    ['/galaxy/gie_proxy/jupyter/ipython/tree?token=abc&redirects=1', `/galaxy/gie_proxy/jupyter/ipython/tree?token=${MASK}&redirects=1`],
    [
      '/api/kernels/4f3c2b1a-0000-4000-8000-000000000001/channels?session_id=9e8d7c&token=abc',
      `/api/kernels/4f3c2b1a-0000-4000-8000-000000000001/channels?session_id=9e8d7c&token=${MASK}`,
    ],
    ['/login?next=%2Ftree&_xsrf=2%7C1a2b%7C3c4d%7C1700000000', `/login?next=%2Ftree&_xsrf=${MASK}`],
    // Encoded or upper-case names are the same parameter to the application.
    ['/tree?%5Fxsrf=a&TOKEN=b', `/tree?%5Fxsrf=${MASK}&TOKEN=${MASK}`],
    // Repeated, empty, or without a value.
    ['/x?token=a&token=b&token=&token', `/x?token=${MASK}&token=${MASK}&token=${MASK}&token`],
    // Not secrets: left as they came.
    ['/tree', '/tree'],
    ['/tree?', '/tree?'],
    ['/api/contents?type=notebook&tokens=1&xtoken=2', '/api/contents?type=notebook&tokens=1&xtoken=2'],
    // A malformed escape in a name does not throw.
    ['/x?%E0%A4%A=1&token=s', `/x?%E0%A4%A=1&token=${MASK}`],
  ];
  for (const [target, logged] of cases) assert.equal(maskQuery(target, DEFAULT), logged, target);
});

test('the logger masks every `path` field, with the configured parameters added to token and _xsrf', () => {
  const logs = new LogCapture();
  const log = createLogger({ verbose: true, maskParams: ['api_key', 'Secret'], destination: logs.stream });
  log.debug({ path: '/p?api_key=k1&secret=s1&token=t1&keep=1', method: 'GET' }, 'request');
  log.child({ component: 'ws' }).warn({ path: '/ws?SECRET=s2' }, 'a warning with a path');
  log.info({ path: 42 }, 'not a string');
  assert.equal(logs.lines[0].path, `/p?api_key=${MASK}&secret=${MASK}&token=${MASK}&keep=1`);
  assert.equal(logs.lines[1].path, `/ws?SECRET=${MASK}`);
  assert.equal(logs.lines[2].path, 42);
  assert.ok(!JSON.stringify(logs.lines).match(/k1|s1|t1|s2/));
});
