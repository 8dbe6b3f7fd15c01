/**
 * A real Jupyter Notebook server (Debian's `jupyter-notebook`) for the
 * Interactive Tools deployment tests, and a minimal client of its kernel
 * channel protocol over one WebSocket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import WebSocket from 'ws';
import { freePort } from './ports.js';
import { stopChild } from './processes.js';
import { requireTool } from './tools.js';
import { waitUntil } from './wait.js';

/** A running notebook server. */
export interface Jupyter {
  port: number;
  /** The base URL it serves under, with leading and trailing slash. */
  baseUrl: string;
  /** Jupyter's own API token (its auth, not Galaxy's entry-point token). */
  token: string;
  /** The notebook directory; holds `galaxy.txt`. */
  notebookDir: string;
  child: ChildProcess;
}

/** The file the notebook directory holds, for the contents API. */
export const NOTEBOOK_FILE = { name: 'galaxy.txt', content: 'written by the test\n' };

/**
 * Starts `jupyter-notebook` on a free loopback port, serving under `baseUrl`
 * (Galaxy's Jupyter IT sets it to the entry point path), with all its state
 * in `dir`, API requests also taken from `allowOrigin` (`port` and `token`
 * when the test must know them before it starts). Resolves once it logs that it is running; it and its kernels
 * (its process group) are stopped in t.after. Undefined when the tool is
 * missing outside CI (the test is skipped).
 */
export async function startJupyter(
  t: TestContext,
  dir: string,
  baseUrl: string,
  { allowOrigin, port: givenPort, token: givenToken }: { allowOrigin?: string; port?: number; token?: string } = {},
): Promise<Jupyter | undefined> {
  const command = requireTool(t, 'jupyter-notebook', 'apt-get install jupyter-notebook');
  if (command === undefined) return undefined;
  const port = givenPort ?? (await freePort());
  const token = givenToken ?? randomUUID().replaceAll('-', '');
  const notebookDir = join(dir, 'notebooks');
  mkdirSync(notebookDir, { recursive: true });
  writeFileSync(join(notebookDir, NOTEBOOK_FILE.name), NOTEBOOK_FILE.content);
  const args = [
    '--no-browser',
    '--ip=127.0.0.1',
    `--port=${port}`,
    '--port-retries=0',
    `--notebook-dir=${notebookDir}`,
    `--NotebookApp.base_url=${baseUrl}`,
    `--NotebookApp.token=${token}`,
    // Requests arrive with the user's Host (nginx passes `Host $host`), not localhost.
    '--NotebookApp.allow_remote_access=True',
    // What Galaxy's Jupyter image does with its CORS_ORIGIN: the API takes
    // requests from the page's origin, whatever Host reaches the container
    // (the README's GIE locations do not pass the browser's on).
    ...(allowOrigin === undefined ? [] : [`--NotebookApp.allow_origin=${allowOrigin}`]),
    ...(process.getuid?.() === 0 ? ['--allow-root'] : []),
  ];
  // A clean environment: no user config, kernels found in /usr/share/jupyter.
  const env = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C.UTF-8',
    HOME: dir,
    JUPYTER_CONFIG_DIR: join(dir, 'config'),
    JUPYTER_DATA_DIR: join(dir, 'data'),
    JUPYTER_RUNTIME_DIR: join(dir, 'runtime'),
    IPYTHONDIR: join(dir, 'ipython'),
  };
  const child = spawn(command, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  t.after(() => stopChild(child, { group: true, graceMs: 5000 }));
  // The notebook server announces itself on stderr once it listens.
  await waitUntil('jupyter-notebook to be running', () => {
    if (child.exitCode !== null) throw new Error(`jupyter-notebook exited ${child.exitCode}: ${output}`);
    return output.includes(' is running at:');
  }, { timeoutMs: 60_000, everyMs: 50 });
  return { port, baseUrl, token, notebookDir, child };
}

interface KernelMessage {
  header: { msg_id: string; msg_type: string };
  parent_header: { msg_id?: string };
  channel: string;
  content: Record<string, unknown>;
}

/** What a kernel produced for one execute request. */
export interface Execution {
  /** The reply's status (`ok`, `error`). */
  status: string;
  /** Everything written to stdout. */
  stdout: string;
}

/**
 * Opens a kernel's channels WebSocket at `url` and runs `code` with one
 * `execute_request` (Jupyter messaging protocol 5.3, JSON frames): collects
 * the `stream` output until the `execute_reply`. `headers` go on the
 * handshake (Origin, Host, auth).
 */
export async function executeInKernel(url: string, code: string, headers: Record<string, string>, timeoutMs = 30_000): Promise<Execution> {
  const ws = new WebSocket(url, { headers, handshakeTimeout: timeoutMs });
  try {
    const session = randomUUID();
    const msgId = randomUUID();
    return await new Promise<Execution>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no execute_reply within ${timeoutMs} ms`)), timeoutMs);
      let stdout = '';
      let status: string | undefined;
      let idle = false;
      const settle = (): void => {
        // The reply (shell) and the idle status (iopub) both end an execution; streams come before idle.
        if (status === undefined || !idle) return;
        clearTimeout(timer);
        resolve({ status, stdout });
      };
      ws.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      ws.on('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        reject(new Error(`kernel WebSocket refused: ${res.statusCode ?? '?'}`));
      });
      ws.on('open', () => {
        ws.send(
          JSON.stringify({
            header: { msg_id: msgId, msg_type: 'execute_request', session, username: 'galaxy', version: '5.3', date: new Date().toISOString() },
            parent_header: {},
            metadata: {},
            content: { code, silent: false, store_history: false, user_expressions: {}, allow_stdin: false, stop_on_error: true },
            channel: 'shell',
            buffers: [],
          }),
        );
      });
      ws.on('message', (data: Buffer) => {
        const msg = JSON.parse(data.toString('utf8')) as KernelMessage;
        if (msg.parent_header.msg_id !== msgId) return;
        if (msg.header.msg_type === 'stream' && msg.content.name === 'stdout') stdout += String(msg.content.text);
        if (msg.header.msg_type === 'status' && msg.content.execution_state === 'idle') idle = true;
        if (msg.header.msg_type === 'execute_reply') status = String(msg.content.status);
        settle();
      });
    });
  } finally {
    ws.terminate();
  }
}
