import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { download } from '../../activities/download';
import type { DownloadResult } from '../../activities/types';
import { ARCHIVE, ARCHIVE_MD5, makeZip, removeDir, tempDir, testDeps } from './helpers';

/** The same functions inside a (mock) activity: heartbeats flow and cancellation is honoured. */
describe('inside an activity context', () => {
  const body = readFileSync(ARCHIVE);
  const sockets = new Set<Socket>();
  let base = '';
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith('/stall')) {
      res.writeHead(200, { 'content-length': String(body.length) });
      res.write(body.subarray(0, 100));
      return;
    }
    // Several chunks, so that progress is reported more than once.
    res.writeHead(200, { 'content-length': String(body.length) });
    let at = 0;
    const step = (): void => {
      if (at >= body.length) return void res.end();
      res.write(body.subarray(at, at + 256 * 1024));
      at += 256 * 1024;
      setTimeout(step, 5);
    };
    step();
  });
  let root: string;

  beforeAll(async () => {
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((done) => server.close(() => done()));
  });
  beforeEach(() => {
    root = tempDir('activity');
  });
  afterEach(() => removeDir(root));

  test('download heartbeats its progress (bytes, rate) and unpack progress', async () => {
    const env = new MockActivityEnvironment();
    const beats: Array<Record<string, unknown>> = [];
    env.on('heartbeat', (d: unknown) => beats.push(d as Record<string, unknown>));
    const r: DownloadResult = await env.run(
      download,
      {
        sweepId: 'test',
        step: 'download',
        params: { urls: [`${base}/ok/gestures-dataset.zip`], md5: ARCHIVE_MD5, unpack: false, max_unpacked_bytes: 1 << 30 },
        inputs: {},
      },
      testDeps(root),
      { progressIntervalMs: 0 },
    );
    expect(r.bytes).toBe(body.length);
    const progress = beats.filter((b) => b.phase === 'download' && (b.bytes as number) > 0);
    expect(progress.length).toBeGreaterThan(3);
    expect(progress[progress.length - 1]).toMatchObject({ bytes: body.length, total: body.length });
    expect(typeof progress[0]!.bytesPerSecond).toBe('number');

    const zip = makeZip(Array.from({ length: 450 }, (_, i) => ({ name: `d/${i}.txt`, data: `${i}` })));
    writeFileSync(join(root, 'small.zip'), zip);
    const unpackBeats: Array<Record<string, unknown>> = [];
    const env2 = new MockActivityEnvironment();
    env2.on('heartbeat', (d: unknown) => unpackBeats.push(d as Record<string, unknown>));
    await env2.run(
      download,
      {
        sweepId: 'test',
        step: 'download',
        params: {
          urls: [`file://${join(root, 'small.zip')}`],
          md5: createHash('md5').update(zip).digest('hex'),
          unpack: true,
          max_unpacked_bytes: 1 << 20,
        },
        inputs: {},
      },
      testDeps(join(root, 'store')),
      { progressIntervalMs: 0 },
    );
    // The latest details are also repeated on a timer, hence the de-duplication.
    expect([...new Set(unpackBeats.filter((b) => b.phase === 'unpack').map((b) => b.entries))]).toEqual([200, 400, 450]);
  });

  test('cancellation stops a stalled download at once, long before the idle timeout', async () => {
    const env = new MockActivityEnvironment();
    const started = Date.now();
    const running = env.run(
      download,
      {
        sweepId: 'test',
        step: 'download',
        params: { urls: [`${base}/stall/gestures-dataset.zip`], md5: ARCHIVE_MD5, unpack: false, max_unpacked_bytes: 1 << 30 },
        inputs: {},
      },
      testDeps(root),
      { idleTimeoutMs: 20_000 },
    );
    setTimeout(() => env.cancel(), 200);
    const err = await running.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.name).toBe('CancelledFailure');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
