import { test } from 'node:test';
import assert from 'node:assert/strict';
import { originFormOf } from '../../../src/http/request-path.js';

test('originFormOf: absolute form loses its scheme and authority; other forms are refused', () => {
  const table: Array<[string, string, string | undefined]> = [
    ['http://other-host/x?y=1', 'GET', '/x?y=1'],
    ['http://other-host', 'GET', '/'],
    ['https://user@other-host:8080?q', 'GET', '/?q'],
    ['ws://other-host/api/kernels', 'GET', '/api/kernels'],
    ['*', 'OPTIONS', '*'],
    ['*', 'GET', undefined],
    ['other-host:443', 'GET', undefined],
    ['x', 'GET', undefined],
  ];
  for (const [url, method, expected] of table) assert.equal(originFormOf(url, method), expected, `${method} ${url}`);
});
