import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Debian's package for the `openssl` command (.ci/run installs it when missing). */
export const OPENSSL_INSTALL = 'apt-get install -y openssl';

/** Skips the test without the openssl command (with the install command); fails it in CI. Returns false when skipped. */
export function requireOpenssl(t: { skip: (reason: string) => void }): boolean {
  if (spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0) return true;
  const reason = `openssl is not installed (${OPENSSL_INSTALL})`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI must have it: see .ci/run`);
  t.skip(reason);
  return false;
}

/** A certificate authority made for one test run: its certificate (what a client trusts) and key. */
export interface TestCa {
  readonly certFile: string;
  readonly keyFile: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? String(err)} (${OPENSSL_INSTALL})`, { cause: err });
  }
}

/** A self-signed CA `name` in `dir` (`NAME.pem`, `NAME.key`), valid for two days. */
export function makeCa(dir: string, name: string): TestCa {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`],
    dir,
  );
  return { certFile, keyFile };
}

/**
 * A server certificate signed by `ca` for `localhost` and 127.0.0.1 (what
 * `sslmode=verify-full` checks the URL's host against): `server.crt`, `server.key` in `dir`.
 */
export function makeServerCert(dir: string, ca: TestCa): { certFile: string; keyFile: string } {
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  const csr = join(dir, 'server.csr');
  const ext = join(dir, 'server.ext');
  writeFileSync(ext, 'subjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n');
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', '/CN=localhost'], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext], dir);
  return { certFile, keyFile };
}
