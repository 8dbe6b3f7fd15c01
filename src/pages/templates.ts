import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The HTML pages browsers get (see browser-pages.ts), built-in or from
 * `--error-pages DIR`, checked once at start. A template is HTML with a tiny
 * placeholder set, each replaced by text the proxy made and escaped:
 *
 * - `{{galaxy_url}}`: the "back to Galaxy" address, attribute-escaped (empty when there is none);
 * - `{{galaxy_link}}`: `<a href="…">Back to Galaxy</a>`, or nothing when there is no address;
 * - `{{retry}}` (starting.html only, required): the script that retries the
 *   tool's address and the unreachable page it turns into when it gives up.
 *
 * Any other `{{…}}`, a missing `{{retry}}`, or a file that cannot be read
 * makes that template unusable: the built-in page is used instead.
 */

type PageName = 'starting' | 'stopped' | 'unreachable';
const PAGE_NAMES: readonly PageName[] = ['starting', 'stopped', 'unreachable'];

const PLACEHOLDER = /\{\{\s*([^}]*?)\s*\}\}/g;
const ALLOWED: Record<PageName, readonly string[]> = {
  starting: ['galaxy_url', 'galaxy_link', 'retry'],
  stopped: ['galaxy_url', 'galaxy_link'],
  unreachable: ['galaxy_url', 'galaxy_link'],
};

const STYLE = `<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}h1{font-size:1.5em}a{color:#2c3143}</style>`;

function page(title: string, body: string): string {
  return `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${title}</title>${STYLE}</head>\n<body>\n${body}\n</body></html>\n`;
}

/** The built-in pages. */
export const BUILT_IN: Readonly<Record<PageName, string>> = Object.freeze({
  starting: page(
    'Your tool is starting',
    '<h1>Your tool is starting</h1>\n<p>This page will open the tool by itself as soon as it answers. There is nothing you need to do.</p>\n<p>{{galaxy_link}}</p>\n{{retry}}',
  ),
  stopped: page('This tool has stopped', '<h1>This tool has stopped</h1>\n<p>It is no longer running. You can start it again from Galaxy.</p>\n<p>{{galaxy_link}}</p>'),
  unreachable: page(
    'Your tool could not be reached',
    '<h1>Your tool could not be reached</h1>\n<p>It did not start in time, or it failed. Check its state in Galaxy, and reload this page to try again.</p>\n<p>{{galaxy_link}}</p>',
  ),
});

/** A usable set of pages, and what was wrong with the admin's templates. */
export interface PageSet {
  readonly pages: Readonly<Record<PageName, string>>;
  /** One line per unusable template (`starting.html: …`); empty when all are usable or no directory was given. */
  readonly problems: readonly string[];
}

/** The pages from `dir` (`--error-pages`), each unusable one replaced by the built-in page; undefined dir: the built-in pages. */
export function loadPages(dir: string | undefined): PageSet {
  if (dir === undefined) return { pages: BUILT_IN, problems: [] };
  const pages = { ...BUILT_IN };
  const problems: string[] = [];
  for (const name of PAGE_NAMES) {
    const file = join(dir, `${name}.html`);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      problems.push(`${name}.html: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (err as Error).message}`);
      continue;
    }
    const problem = templateProblem(name, text);
    if (problem === undefined) pages[name] = text;
    else problems.push(`${name}.html: ${problem}`);
  }
  return { pages: Object.freeze(pages), problems };
}

/** Why `text` cannot be the `name` page, or undefined when it can. */
export function templateProblem(name: PageName, text: string): string | undefined {
  if (text.includes('\uFFFD')) return 'not UTF-8';
  for (const [, placeholder] of text.matchAll(PLACEHOLDER)) {
    if (!ALLOWED[name].includes(placeholder)) return `unknown placeholder {{${placeholder}}} (allowed: ${ALLOWED[name].map((p) => `{{${p}}}`).join(', ')})`;
  }
  if (name === 'starting' && !/\{\{\s*retry\s*\}\}/.test(text)) return 'no {{retry}} placeholder (the page could not retry)';
  return undefined;
}

/** `text` made safe inside HTML text and double- or single-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Fills a template's placeholders: `galaxyUrl` escaped, `retry` as given (the proxy's own markup). */
export function render(template: string, galaxyUrl: string | undefined, retry = ''): string {
  const url = galaxyUrl === undefined ? '' : escapeHtml(galaxyUrl);
  const link = galaxyUrl === undefined ? '' : `<a href="${url}" rel="noreferrer">Back to Galaxy</a>`;
  return template.replace(PLACEHOLDER, (_all, name: string) => (name === 'galaxy_url' ? url : name === 'galaxy_link' ? link : name === 'retry' ? retry : ''));
}

/** The body of a whole HTML document (what lies between `<body…>` and `</body>`), or the text itself when it has none. */
export function bodyOf(html: string): string {
  return /<body[^>]*>([\s\S]*)<\/body>/i.exec(html)?.[1] ?? html;
}

/**
 * The starting page's script: it asks for the tool's address again (as a
 * script, so the proxy answers it in plain text and the page stays), after
 * 1 s, doubling to 10 s; once the tool answers with anything but the
 * proxy's 404/502/503/504, it reloads the page, which is then the tool. After
 * `timeoutMs` from the first try (kept in sessionStorage across reloads) it
 * shows the unreachable page held in the `<template>` beside it.
 */
export function retryScript(timeoutMs: number): string {
  return `(function(){var k='gie-proxy-starting:'+location.pathname,s=window.sessionStorage,f=Number(s.getItem(k))||Date.now(),d=1000;s.setItem(k,String(f));
function stop(){s.removeItem(k);var t=document.getElementById('gie-proxy-unreachable');if(t){document.title=t.getAttribute('data-title');document.body.replaceChildren(t.content.cloneNode(true));}}
function later(){setTimeout(check,d);d=Math.min(d*2,10000);}
function check(){if(Date.now()-f>=${timeoutMs}){stop();return;}fetch(location.href,{cache:'no-store',credentials:'same-origin',headers:{'X-Requested-With':'gie-proxy-page'}}).then(function(r){if(r.status===404||r.status>=502&&r.status<=504){later();}else{s.removeItem(k);location.reload();}},later);}
if(Date.now()-f>=${timeoutMs}){stop();}else{later();}})();`;
}

/** The `'sha256-…'` source a Content-Security-Policy allows `script` by. */
export function scriptHash(script: string): string {
  return `'sha256-${createHash('sha256').update(script, 'utf8').digest('base64')}'`;
}
