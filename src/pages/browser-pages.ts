import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RemovedMemory } from '../routing/removed-memory.js';
import { isUnderPrefix, splitEntryPointHost, splitEntryPointPath } from '../routing/entry-point-router.js';
import type { Refused, RefusalReason } from '../routing/router.js';
import { galaxyLinkFor, type GalaxyLinkOptions } from './galaxy-link.js';
import { bodyOf, escapeHtml, render, retryScript, scriptHash, type PageSet } from './templates.js';

/**
 * The pages a person's browser gets instead of the one-line plain-text
 * answers (browser-navigation.ts says who that is): "starting" (503, retries
 * by itself) when the tool is not in the map yet or its container refuses,
 * "stopped" (404) when Galaxy removed exactly this key and token while the
 * process ran. Only refusals and container failures come here: routed
 * requests never do.
 */

interface BrowserPagesOptions extends GalaxyLinkOptions {
  readonly pages: PageSet['pages'];
  /** `--starting-page-timeout`: how long the starting page retries before it says the tool could not be reached. */
  readonly startingTimeoutMs: number;
  /** Routes removed while running. */
  readonly removed: RemovedMemory;
  /** Re-reads the map (the reloader's coalesced reload); undefined without a map. */
  readonly reread: (() => Promise<unknown>) | undefined;
  /** True while the map routes by session cookie (GIE). */
  readonly cookieMode: () => boolean;
}

/** Refusals a browser gets a page for (the others keep their plain answers). */
const PAGE_REFUSALS: ReadonlySet<RefusalReason> = new Set(['unknown-entry-point', 'wrong-token', 'no-session']);

/** Longest wait for the map re-read before a browser's miss is answered. */
const REREAD_WAIT_MS = 2000;

/** What the browser pages say in the log: admins (and tests) match on it. */
export const PAGES_LOG = Object.freeze({
  /** At start, once, with `dir` and `problems` (one line per unusable template). */
  templatesUnusable: 'error page templates unusable; the built-in pages are used for them',
});

export class BrowserPages {
  private readonly starting: string;
  private readonly stopped: string;
  private readonly startingCsp: string;
  private rereading: Promise<unknown> | undefined;

  constructor(private readonly options: BrowserPagesOptions) {
    const script = retryScript(options.startingTimeoutMs);
    const unreachable = options.pages.unreachable;
    const title = /<title>([^<]*)<\/title>/i.exec(unreachable)?.[1] ?? 'Your tool could not be reached';
    // The unreachable page rides along in a <template>; its galaxy link is filled per request (see startingPage).
    this.starting = options.pages.starting.replace(
      /\{\{\s*retry\s*\}\}/,
      () => `<template id="gie-proxy-unreachable" data-title="${escapeHtml(title)}">${bodyOf(unreachable)}</template><script>${script}</script>`,
    );
    this.stopped = options.pages.stopped;
    this.startingCsp = `default-src 'none'; script-src ${scriptHash(script)}; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'`;
  }

  /** True when a browser gets a page for this refusal (or other answer case). */
  handles(reason: string): boolean {
    return PAGE_REFUSALS.has(reason as RefusalReason);
  }

  /**
   * Answers a browser's refused request: first the map is re-read once
   * (one read for every miss meanwhile) and the request routed again, so a
   * row committed a moment ago is found (`reroute` forwards it and returns
   * undefined); otherwise "stopped" when this key and token (or session) were
   * removed, else "starting". An unknown key and a wrong token take the
   * same steps and get the same page.
   */
  async answerRefusal(req: IncomingMessage, res: ServerResponse, reroute: () => Refused | undefined): Promise<void> {
    await this.rereadOnce();
    if (res.destroyed || res.headersSent) return;
    const refused = reroute();
    if (refused === undefined) return;
    if (this.wasRemoved(req, refused)) this.sendStopped(req, res);
    else this.sendStarting(req, res);
  }

  /** Answers a browser whose tool's container refused or reset the connection: "starting". */
  answerUnreachable(req: IncomingMessage, res: ServerResponse, clientUrl: string | undefined): void {
    this.sendStarting(req, res, clientUrl);
  }

  /**
   * True when the request names exactly a removed session, or a removed key
   * with its token (read again here as the router reads it: the router's
   * refusal carries no token).
   */
  private wasRemoved(req: IncomingMessage, refused: Refused): boolean {
    const { removed, pathPrefix } = this.options;
    if (refused.refusal === 'no-session') return refused.credential !== undefined && removed.has('session', refused.credential);
    const url = req.url ?? '/';
    const { key, token } =
      pathPrefix !== undefined && isUnderPrefix(url, pathPrefix) ? splitEntryPointPath(url, pathPrefix.length) : splitEntryPointHost(req.headers.host ?? '');
    return key !== '' && removed.has('entry-point', key, token);
  }

  private rereadOnce(): Promise<unknown> {
    const reread = this.options.reread;
    if (reread === undefined) return Promise.resolve();
    if (this.rereading !== undefined) return this.rereading;
    let timer: NodeJS.Timeout | undefined;
    const bounded = Promise.race([
      reread().catch(() => undefined),
      new Promise((resolve) => {
        timer = setTimeout(resolve, REREAD_WAIT_MS);
      }),
    ]).finally(() => {
      clearTimeout(timer);
      this.rereading = undefined;
    });
    this.rereading = bounded;
    return bounded;
  }

  private link(req: IncomingMessage, clientUrl: string | undefined): string | undefined {
    return galaxyLinkFor(req, clientUrl ?? req.url ?? '/', this.options, this.options.cookieMode());
  }

  private sendStarting(req: IncomingMessage, res: ServerResponse, clientUrl?: string): void {
    send(res, 503, render(this.starting, this.link(req, clientUrl)), this.startingCsp, { 'retry-after': '1' });
  }

  private sendStopped(req: IncomingMessage, res: ServerResponse): void {
    send(res, 404, render(this.stopped, this.link(req, undefined)), STRICT_CSP, {});
  }
}

/** For pages without a script. */
const STRICT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'";

function send(res: ServerResponse, status: number, html: string, csp: string, extra: Record<string, string>): void {
  if (res.headersSent || res.writableEnded) return;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': String(Buffer.byteLength(html)),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'content-security-policy': csp,
    // The tool's address holds its token: a click on the Galaxy link must not send it on.
    'referrer-policy': 'no-referrer',
    ...extra,
  });
  res.end(res.req.method === 'HEAD' ? undefined : html);
}
