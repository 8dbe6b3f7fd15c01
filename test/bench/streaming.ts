import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { cookieHeader, fmt, type BenchContext } from './context.js';
import { memory, sampleRss } from './proc-stats.js';
import { writeBytes } from './pump.js';

const MiB = 1024 * 1024;

export interface StreamFigures {
  /** RSS of the proxy before the first transfer. */
  readonly baselineMiB: number;
  /** Highest sampled RSS minus the baseline, per direction. */
  readonly uploadGrowthMiB: number;
  readonly downloadGrowthMiB: number;
  /** The kernel's high-water mark minus the baseline, after both. */
  readonly hwmGrowthMiB: number;
  readonly uploadMiBs: number;
  readonly downloadMiBs: number;
}

/**
 * Streams `mib` MiB up and then down through a freshly started proxy and
 * samples its RSS meanwhile: a proxy that buffers bodies grows by the body
 * size, one that streams with backpressure by a few socket buffers.
 */
export async function streamingMemory(ctx: BenchContext, name: string, proxyPid: number, proxyPort: number, key: string, mib: number): Promise<StreamFigures> {
  const bytes = mib * MiB;
  const baselineMiB = memory(proxyPid).rssMiB;

  let sampler = sampleRss(proxyPid);
  let t0 = performance.now();
  const received = await upload(proxyPort, key, bytes);
  const uploadMiBs = mib / ((performance.now() - t0) / 1000);
  const up = sampler.stop();
  if (received !== bytes) throw new Error(`upload: the backend received ${received} of ${bytes} bytes`);

  sampler = sampleRss(proxyPid);
  t0 = performance.now();
  const got = await download(proxyPort, key, bytes);
  const downloadMiBs = mib / ((performance.now() - t0) / 1000);
  const down = sampler.stop();
  if (got !== bytes) throw new Error(`download: received ${got} of ${bytes} bytes`);

  const figures = {
    baselineMiB,
    uploadGrowthMiB: up.peakMiB - baselineMiB,
    downloadGrowthMiB: down.peakMiB - baselineMiB,
    hwmGrowthMiB: down.hwmMiB - baselineMiB,
    uploadMiBs,
    downloadMiBs,
  };
  ctx.progress(
    `  ${name.padEnd(10)} ${mib} MiB up: +${fmt(figures.uploadGrowthMiB, 1)} MiB RSS (${fmt(uploadMiBs, 0)} MiB/s); down: +${fmt(figures.downloadGrowthMiB, 1)} MiB RSS (${fmt(downloadMiBs, 0)} MiB/s); VmHWM +${fmt(figures.hwmGrowthMiB, 1)} MiB over ${fmt(baselineMiB, 1)} MiB`,
  );
  return figures;
}

/** POSTs `bytes` with backpressure; resolves with the size the backend reports. */
function upload(port: number, key: string, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/upload',
        agent: false,
        headers: { cookie: cookieHeader(key), 'content-type': 'application/octet-stream', 'content-length': bytes },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.once('end', () => (res.statusCode === 200 ? resolve(Number(body.trim())) : reject(new Error(`upload: status ${res.statusCode}`))));
      },
    );
    req.once('error', reject);
    writeBytes(req, bytes);
  });
}

/** GETs `bytes` from the backend and counts them without keeping them. */
function download(port: number, key: string, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: `/download?bytes=${bytes}`, agent: false, headers: { cookie: cookieHeader(key) } },
      (res) => {
        if (res.statusCode !== 200) reject(new Error(`download: status ${res.statusCode}`));
        let got = 0;
        res.on('data', (c: Buffer) => (got += c.length));
        res.once('end', () => resolve(got));
        res.once('error', reject);
      },
    );
    req.once('error', reject);
  });
}
