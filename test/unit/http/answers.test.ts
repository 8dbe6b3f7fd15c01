import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ANSWERS, caseForClientError, caseForProxyError, ProxyTimeoutError } from '../../../src/http/answers.js';

test('failure → status: one table', () => {
  const table: Array<[string | undefined, number, boolean]> = [
    ['ECONNREFUSED', 502, true],
    ['ECONNRESET', 502, true],
    ['EHOSTUNREACH', 502, true],
    ['ENOTFOUND', 502, true],
    ['ETIMEDOUT', 504, true],
    ['ERR_GIE_PROXY_TIMEOUT', 504, true],
    ['ERR_SOMETHING_ELSE', 502, false],
    [undefined, 502, false],
  ];
  for (const [code, status, known] of table) {
    const err = Object.assign(new Error('x'), { code });
    const answerCase = caseForProxyError(err);
    assert.equal(ANSWERS[answerCase].status, status, String(code));
    assert.equal(answerCase !== 'internal', known, String(code));
  }
});

test('caseForClientError and caseForProxyError: the status table', () => {
  const statusForClientError = (code: string | undefined): number => ANSWERS[caseForClientError(code)].status;
  const statusForProxyError = (err: NodeJS.ErrnoException): number => ANSWERS[caseForProxyError(err)].status;
  assert.equal(statusForClientError('ERR_HTTP_REQUEST_TIMEOUT'), 408);
  assert.equal(statusForClientError('HPE_HEADER_OVERFLOW'), 431);
  for (const code of ['HPE_INVALID_METHOD', 'HPE_INVALID_HEADER_TOKEN', 'HPE_UNEXPECTED_CONTENT_LENGTH', undefined]) assert.equal(statusForClientError(code), 400);
  assert.equal(statusForProxyError(new ProxyTimeoutError(10)), 504);
  assert.equal(statusForProxyError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), 502);
});
