import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { isBrowserNavigation, prefersHtml } from '../../../src/pages/browser-navigation.js';

const CHROMIUM = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7';
const FIREFOX = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

test('prefersHtml: browsers navigating yes; APIs, curl, html at a lower or zero weight no', () => {
  const cases: Array<[string | undefined, boolean]> = [
    [CHROMIUM, true],
    [FIREFOX, true],
    ['text/html', true],
    ['TEXT/HTML;q=1', true],
    ['text/html;q=0.5, application/json;q=0.5', true],
    [undefined, false],
    ['*/*', false],
    ['application/json', false],
    ['application/json, text/html;q=0.9', false],
    ['text/html;q=0', false],
    ['text/html;q=abc', false],
    ['text/htmlx', false],
  ];
  for (const [accept, expected] of cases) assert.equal(prefersHtml(accept), expected, String(accept));
});

function req(method: string, headers: Record<string, string>): IncomingMessage {
  return { method, headers } as unknown as IncomingMessage;
}

test('isBrowserNavigation: GET/HEAD preferring HTML, not XHR, not a cors/no-cors fetch, not an upgrade', () => {
  assert.equal(isBrowserNavigation(req('GET', { accept: CHROMIUM, 'sec-fetch-mode': 'navigate' })), true);
  assert.equal(isBrowserNavigation(req('HEAD', { accept: FIREFOX })), true);
  assert.equal(isBrowserNavigation(req('POST', { accept: CHROMIUM })), false);
  assert.equal(isBrowserNavigation(req('GET', { accept: CHROMIUM, 'x-requested-with': 'XMLHttpRequest' })), false);
  assert.equal(isBrowserNavigation(req('GET', { accept: CHROMIUM, 'sec-fetch-mode': 'cors' })), false);
  assert.equal(isBrowserNavigation(req('GET', { accept: CHROMIUM, 'sec-fetch-mode': 'no-cors' })), false);
  assert.equal(isBrowserNavigation(req('GET', { accept: CHROMIUM, upgrade: 'websocket' })), false);
  assert.equal(isBrowserNavigation(req('GET', { accept: 'application/json' })), false);
});
