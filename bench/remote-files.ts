/**
 * `npm run bench:files` — file transfer through a remote session, against a plain `cat` of the same file, in the
 * same run.
 *
 * - aipd runs as `aipd serve` (its own process, memory store), and a real `aipd device --root DIR` registers.
 * - A --size-mib file of random-looking bytes is written once. Per repetition:
 *   `cat` copies it into another file (the baseline: what the disk and page cache give one process);
 *   upload: one multipart POST streams it through the server into the device's root (SHA-256 checked end to end);
 *   download: GET download_single streams it back and this process hashes it.
 * - Output: MiB/s for each, the ratios upload/cat and download/cat, the server's peak RSS growth; a table on
 *   stdout and bench/results/files-latest.json. Bounded by a watchdog.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAll, rssBytes, sleep, startServer, stopChild, track } from './lib/proc.js';
import { AIPD_MAIN, aipdAvailable, aipdServeArgs } from './lib/scenarios.js';

const KEY = 'bench-key';
const MiB = 1024 * 1024;

const { values } = parseArgs({
  options: { 'size-mib': { type: 'string', default: '256' }, reps: { type: 'string', default: '3' } },
});
const sizeMiB = Number(values['size-mib']);
const reps = Number(values.reps);
const watchdog = setTimeout(() => {
  process.stderr.write('bench:files watchdog: giving up after 10 minutes\n');
  killAll();
  process.exit(2);
}, 600_000);

function request(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): http.ClientRequest {
  const u = new URL(path, base);
  return http.request({
    method,
    host: u.hostname,
    port: u.port,
    path: u.pathname + u.search,
    headers: { 'x-api-key': KEY, ...headers },
  });
}

async function main(): Promise<void> {
  if (!aipdAvailable()) throw new Error('build first: npm run build');
  const tmp = mkdtempSync(join(os.tmpdir(), 'aipd-bench-files-'));
  try {
    const root = join(tmp, 'root');
    mkdirSync(root);
    const src = join(tmp, 'source.bin');
    const block = randomBytes(MiB);
    const h = createHash('sha256');
    const out = createWriteStream(src);
    for (let i = 0; i < sizeMiB; i++) {
      block.writeUInt32BE(i, 0);
      h.update(block);
      if (!out.write(Buffer.from(block))) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');
    const sha = h.digest('hex');

    const server = await startServer(
      aipdServeArgs(KEY, ['--store', 'memory', '--log-level', 'warn']),
      /listening on ws:\/\/[^:]+:(\d+)\//,
    );
    const base = `http://127.0.0.1:${server.port}`;
    const device = track(
      spawn(
        process.execPath,
        [
          AIPD_MAIN,
          'device',
          '--url',
          `ws://127.0.0.1:${server.port}/ws`,
          '--token',
          KEY,
          '--client-id',
          'bench-dev',
          '--root',
          root,
          '--log-level',
          'warn',
        ],
        { stdio: 'ignore' },
      ),
    );
    for (let i = 0; ; i++) {
      const r = await fetch(`${base}/api/clients`, { headers: { 'x-api-key': KEY } });
      if (((await r.json()) as { online_clients: string[] }).online_clients.includes('bench-dev')) break;
      if (i > 400) throw new Error('device did not register');
      await sleep(25);
    }
    const created = await fetch(`${base}/sessions`, {
      method: 'POST',
      headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ agent_id: 'bench-dev', session_type: 'interactive' }),
    });
    const id = ((await created.json()) as { id: string }).id;
    const baseline = rssBytes(server.pid);
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(server.pid))), 50);

    const rows: { cat: number; upload: number; download: number }[] = [];
    for (let r = 0; r < reps; r++) {
      let t = performance.now();
      execFileSync('sh', ['-c', `cat '${src}' > '${join(tmp, 'copy.bin')}'`]);
      const cat = sizeMiB / ((performance.now() - t) / 1000);

      t = performance.now();
      const boundary = 'bench-boundary';
      const req = request(base, 'POST', `/sessions/${id}/upload`, {
        'content-type': `multipart/form-data; boundary=${boundary}`,
      });
      const answered = once(req, 'response') as Promise<[http.IncomingMessage]>;
      req.write(`--${boundary}\r\nContent-Disposition: form-data; name="f"; filename="big.bin"\r\n\r\n`);
      for await (const c of createReadStream(src, { highWaterMark: 256 * 1024 }))
        if (!req.write(c)) await once(req, 'drain');
      req.end(`\r\n--${boundary}--\r\n`);
      const [res] = await answered;
      let body = '';
      for await (const c of res) body += String(c);
      if (!body.includes(sha)) throw new Error(`upload failed: ${body}`);
      const upload = sizeMiB / ((performance.now() - t) / 1000);

      t = performance.now();
      const dreq = request(base, 'GET', `/sessions/${id}/download_single?file=big.bin`);
      dreq.end();
      const [dres] = (await once(dreq, 'response')) as [http.IncomingMessage];
      const dh = createHash('sha256');
      for await (const c of dres) dh.update(c as Buffer);
      if (dh.digest('hex') !== sha) throw new Error('download hash mismatch');
      const download = sizeMiB / ((performance.now() - t) / 1000);
      rows.push({ cat, upload, download });
      process.stderr.write(
        `rep ${r + 1}: cat ${cat.toFixed(0)} MiB/s, upload ${upload.toFixed(0)}, download ${download.toFixed(0)}\n`,
      );
    }
    clearInterval(sampler);
    const med = (k: 'cat' | 'upload' | 'download'): number =>
      rows.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(rows.length / 2)]!;
    const result = {
      size_mib: sizeMiB,
      reps,
      cat_mib_s: med('cat'),
      upload_mib_s: med('upload'),
      download_mib_s: med('download'),
      upload_over_cat: med('upload') / med('cat'),
      download_over_cat: med('download') / med('cat'),
      server_rss_growth_mib: (peak - baseline) / MiB,
      runs: rows,
    };
    process.stdout.write(
      `file transfer, ${sizeMiB} MiB, median of ${reps}:\n` +
        `  cat copy   ${result.cat_mib_s.toFixed(0)} MiB/s\n` +
        `  upload     ${result.upload_mib_s.toFixed(0)} MiB/s  (${result.upload_over_cat.toFixed(2)} × cat)\n` +
        `  download   ${result.download_mib_s.toFixed(0)} MiB/s  (${result.download_over_cat.toFixed(2)} × cat)\n` +
        `  server RSS growth (peak) ${result.server_rss_growth_mib.toFixed(1)} MiB\n`,
    );
    const file = join(
      dirname(fileURLToPath(import.meta.url)),
      '..',
      '..',
      'bench',
      'results',
      'files-latest.json',
    );
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(result, null, 2));
    await stopChild(device);
    await stopChild(server.child);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => {
    clearTimeout(watchdog);
  },
  (err: unknown) => {
    process.stderr.write(`bench:files failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    killAll();
    process.exit(1);
  },
);
