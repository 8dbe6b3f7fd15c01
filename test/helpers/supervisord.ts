import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import { isAlive, stopChild } from './processes.js';
import { requireTool } from './tools.js';
import { waitUntil } from './wait.js';

const run = promisify(execFile);

/** One line of `supervisorctl status <program>`. */
export interface ProgramStatus {
  state: string;
  pid: number | undefined;
  line: string;
}

/** A private supervisord running one program block, and supervisorctl against it. */
export interface Supervisord {
  daemon: ChildProcess;
  /** supervisord's own log file. */
  log: string;
  /** Every pid the program has had (killed in t.after if still alive). */
  pids: Set<number>;
  ctl: (...args: string[]) => Promise<string>;
  status: () => Promise<ProgramStatus>;
  /** Waits until the program is in `state` (and `check` holds). */
  waitForState: (state: string, check?: (s: ProgramStatus) => boolean, timeoutMs?: number) => Promise<ProgramStatus>;
  /** True when supervisord's log matches. */
  logHas: (re: RegExp) => boolean;
  /** Stops supervisord (it stops its program first); resolves with its exit code. */
  stop: () => Promise<number | null>;
}

/**
 * Starts a private supervisord (its own socket, pid file and logs in `dir`,
 * no system config) running `program` (a `[program:<name>]` block), in the
 * foreground, with `node` (the one running the tests) on its PATH. Undefined
 * when supervisor is missing outside CI.
 */
export async function startSupervisord(t: TestContext, dir: string, name: string, program: string): Promise<Supervisord | undefined> {
  const supervisord = requireTool(t, 'supervisord', 'apt-get install supervisor');
  const supervisorctl = requireTool(t, 'supervisorctl', 'apt-get install supervisor');
  if (supervisord === undefined || supervisorctl === undefined) return undefined;
  const log = join(dir, 'supervisord.log');
  const conf = join(dir, 'supervisord.conf');
  writeFileSync(
    conf,
    [
      '[unix_http_server]',
      `file = ${join(dir, 'supervisor.sock')}`,
      'chmod = 0700',
      '',
      '[supervisord]',
      `logfile = ${log}`,
      `pidfile = ${join(dir, 'supervisord.pid')}`,
      `childlogdir = ${join(dir, 'log')}`,
      'nodaemon = true',
      'loglevel = info',
      '',
      '[rpcinterface:supervisor]',
      'supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface',
      '',
      '[supervisorctl]',
      `serverurl = unix://${join(dir, 'supervisor.sock')}`,
      '',
      program,
    ].join('\n'),
  );
  // `#!/usr/bin/env node` in the bins finds the node that runs the tests.
  const env = { PATH: `${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`, LANG: 'C.UTF-8' };
  const daemon = spawn(supervisord, ['-c', conf], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  daemon.stdout.on('data', (c: Buffer) => (output += c.toString()));
  daemon.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const pids = new Set<number>();
  t.after(async () => {
    // supervisord stops its programs (SIGTERM) and exits; anything left is killed.
    await stopChild(daemon, { graceMs: 15_000 });
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  });

  const ctl = async (...args: string[]): Promise<string> => {
    try {
      return (await run(supervisorctl, ['-c', conf, ...args], { env, timeout: 10_000 })).stdout;
    } catch (err) {
      // `status` exits non-zero for a program that is not RUNNING; its output is still the answer.
      const out = (err as { stdout?: string }).stdout;
      if (typeof out === 'string' && out !== '') return out;
      throw err;
    }
  };
  const status = async (): Promise<ProgramStatus> => {
    const line = (await ctl('status', name)).trim();
    const [, state = '?', rest = ''] = /^\S+\s+(\S+)\s*(.*)$/.exec(line) ?? [];
    const pid = /pid (\d+)/.exec(rest)?.[1];
    if (pid !== undefined) pids.add(Number(pid));
    return { state, pid: pid === undefined ? undefined : Number(pid), line };
  };
  const waitForState = (state: string, check: (s: ProgramStatus) => boolean = () => true, timeoutMs = 20_000): Promise<ProgramStatus> =>
    waitUntil(`${name} ${state}`, async () => {
      if (daemon.exitCode !== null) throw new Error(`supervisord exited: ${output}`);
      const s = await status();
      return s.state === state && check(s) ? s : undefined;
    }, { timeoutMs, everyMs: 100 });
  const stop = async (): Promise<number | null> => {
    await stopChild(daemon);
    return daemon.exitCode;
  };
  return { daemon, log, pids, ctl, status, waitForState, logHas: (re) => re.test(readFileSync(log, 'utf8')), stop };
}
