import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { freePort } from './ports.js';
import { stopChild } from './processes.js';

/** Debian's classic Jupyter Notebook server (package jupyter-notebook). */
export const JUPYTER_NOTEBOOK = 'jupyter-notebook';

/** The path Galaxy's Jupyter interactive environment is served under, as its container sees it. */
export const JUPYTER_BASE_URL = '/galaxy/gie_proxy/jupyter/ipython/';

/** A running Jupyter Notebook server on loopback. */
export interface Jupyter {
  readonly port: number;
  /** The token its pages require (`?token=` once; it then sets its own login cookie). */
  readonly token: string;
  /** Everything it printed so far, for failure messages. */
  output(): string;
}

/**
 * Starts a real Jupyter Notebook server (`jupyter` is the path of
 * jupyter-notebook) like Galaxy's Jupyter container does: under `baseUrl`
 * (default JUPYTER_BASE_URL, the GIE path; an Interactive Tool's is its entry
 * point path), the prefix kept, with a known token, API requests allowed
 * from `origin` (the address the browser sees), its home, runtime files and
 * notebooks in `dir`. Resolves once it says it is running (within
 * 30 s); it and its kernels (its process group) are stopped in t.after.
 */
export async function startJupyter(
  t: TestContext,
  jupyter: string,
  dir: string,
  { token, origin, baseUrl = JUPYTER_BASE_URL }: { token: string; origin: string; baseUrl?: string },
): Promise<Jupyter> {
  const port = await freePort();
  const home = join(dir, 'jupyter-home');
  const notebooks = join(dir, 'notebooks');
  mkdirSync(home, { recursive: true });
  mkdirSync(notebooks, { recursive: true });
  const child = spawn(
    jupyter,
    [
      '--no-browser',
      '--allow-root',
      '--ip=127.0.0.1',
      `--port=${port}`,
      '--port-retries=0',
      `--notebook-dir=${notebooks}`,
      `--NotebookApp.base_url=${baseUrl}`,
      `--NotebookApp.token=${token}`,
      // What Galaxy's Jupyter image does with its CORS_ORIGIN: the API takes
      // requests from the page's origin, which is Galaxy's, not the container's.
      `--NotebookApp.allow_origin=${origin}`,
    ],
    {
      // Its config, runtime files and IPython profile land in the temp dir, not in root's home.
      env: { ...process.env, HOME: home, JUPYTER_CONFIG_DIR: join(home, 'config'), JUPYTER_RUNTIME_DIR: join(home, 'runtime'), IPYTHONDIR: join(home, 'ipython') },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
  t.after(() => stopChild(child, { group: true, graceMs: 5000 }));
  let output = '';
  const running = new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer): void => {
      output += c.toString('utf8');
      if (output.includes(`:${port}${baseUrl}`)) resolve();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code, signal) => reject(new Error(`${jupyter} exited (${code ?? signal}) before it was running:\n${output}`)));
    child.once('error', reject);
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      running,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${jupyter} did not say it was running within 30 s:\n${output}`)), 30_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
  return { port, token, output: () => output };
}
