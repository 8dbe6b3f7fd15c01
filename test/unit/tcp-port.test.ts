import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tcpPort } from '../../src/tcp-port.js';

test('tcpPort: decimal digits naming 1 to 65535, nothing else', () => {
  const table: Array<[string, number | undefined]> = [
    ['1', 1],
    ['80', 80],
    ['0080', 80],
    ['65535', 65535],
    ['0', undefined],
    ['65536', undefined],
    ['99999999999999999999', undefined],
    ['', undefined],
    ['-1', undefined],
    ['+80', undefined],
    [' 80', undefined],
    ['80 ', undefined],
    ['8.0', undefined],
    ['0x50', undefined],
    ['1e3', undefined],
    ['٨٠', undefined], // Arabic-Indic digits: not ASCII
  ];
  for (const [text, port] of table) assert.equal(tcpPort(text), port, JSON.stringify(text));
});
