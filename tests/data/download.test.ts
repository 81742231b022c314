import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join, relative } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { download, type DownloadTuning } from '../../activities/download';
import { UnsafeArchiveError, unpackZip } from '../../activities/archive';
import type { DownloadParams } from '../../activities/download';
import { ARCHIVE, ARCHIVE_MD5, ARCHIVE_SHA256, listFiles, makeZip, removeDir, tempDir, testDeps } from './helpers';

const FAST: Partial<DownloadTuning> = { attemptsPerMirror: 3, backoffMs: 5, maxBackoffMs: 20, idleTimeoutMs: 300 };
const BODY = readFileSync(ARCHIVE);

function params(urls: string[], extra: Partial<DownloadParams> = {}): DownloadParams {
  return { urls, md5: ARCHIVE_MD5, filename: 'gestures-dataset.zip', unpack: false, max_unpacked_bytes: 1 << 30, ...extra };
}

function input(p: DownloadParams): Parameters<typeof download>[0] {
  return { sweepId: 'test', step: 'download', params: p, inputs: {} };
}

/**
 * A loopback server whose paths misbehave on purpose. `/<mode>/…` serves the archive; the
 * first request to a path misbehaves according to its mode and later ones succeed (except
 * `always-*` modes).
 */
class MisbehavingServer {
  readonly requests: string[] = [];
  private readonly seen = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  private server = http.createServer((req, res) => this.handle(req, res));
  base = '';

  async start(): Promise<void> {
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((done) => this.server.listen(0, '127.0.0.1', done));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((done) => this.server.close(() => done()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = req.url ?? '/';
    this.requests.push(path);
    const n = (this.seen.get(path) ?? 0) + 1;
    this.seen.set(path, n);
    const mode = path.split('/')[1] ?? '';
    const first = n === 1;
    const half = Math.floor(BODY.length / 2);
    const full = { 'content-type': 'application/zip', 'content-length': String(BODY.length) };

    if (mode === 'flaky500' && first) return void res.writeHead(500).end('internal error');
    if (mode === 'always503') return void res.writeHead(503).end('busy');
    if (mode === 'missing') return void res.writeHead(404).end('not found');
    if (mode === 'redirect') return void res.writeHead(302, { location: '/ok/gestures-dataset.zip' }).end();
    if (mode === 'wrong') {
      const page = Buffer.from('<html>this is not the archive you are looking for</html>');
      return void res.writeHead(200, { 'content-length': String(page.length) }).end(page);
    }
    if (mode === 'reset' && first) {
      res.writeHead(200, full);
      res.write(BODY.subarray(0, half), () => setTimeout(() => req.socket.resetAndDestroy(), 20));
      return;
    }
    if (mode === 'truncated' && first) {
      res.writeHead(200, full);
      // A clean close (FIN, no reset) after half the declared length.
      res.write(BODY.subarray(0, half), () => setTimeout(() => req.socket.end(), 20));
      return;
    }
    if (mode === 'stall' && first) {
      res.writeHead(200, full);
      res.write(BODY.subarray(0, 1000)); // …and then nothing, with the connection left open
      return;
    }
    if (mode === 'stallheaders' && first) return; // never even answers
    res.writeHead(200, full).end(BODY);
  }
}

/** A port with nobody listening: connections are refused. */
async function deadPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((done) => s.listen(0, '127.0.0.1', done));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((done) => s.close(() => done()));
  return port;
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the call to fail');
}

describe('download over HTTP', () => {
  const server = new MisbehavingServer();
  let root: string;
  beforeAll(async () => {
    await server.start();
  });
  afterAll(async () => {
    await server.stop();
  });
  let mark = 0;
  beforeEach(() => {
    root = tempDir('download');
    mark = server.requests.length;
  });
  /** Requests this test made whose path starts with `prefix`. */
  const hits = (prefix: string): number => server.requests.slice(mark).filter((p) => p.startsWith(prefix)).length;
  afterEach(() => removeDir(root));

  const url = (mode: string): string => `${server.base}/${mode}/gestures-dataset.zip`;

  test('a healthy mirror: verified, stored under the declared name, both digests reported', async () => {
    const deps = testDeps(root);
    const r = await download(input(params([url('ok')])), deps, FAST);
    expect(r.cached).toBe(false);
    expect(r.md5).toBe(ARCHIVE_MD5);
    expect(r.sha256).toBe(ARCHIVE_SHA256);
    expect(r.bytes).toBe(BODY.length);
    expect(r.source).toBe(url('ok'));
    expect(readFileSync(deps.store.path(r.ref, r.archive)).equals(BODY)).toBe(true);
    expect(Object.keys(await deps.store.files(r.ref))).toEqual(['gestures-dataset.zip']);
  });

  test('500 then success: retried on the same mirror', async () => {
    const r = await download(input(params([url('flaky500')])), testDeps(root), FAST);
    expect(r.sha256).toBe(ARCHIVE_SHA256);
    expect(hits('/flaky500')).toBe(2);
  });

  test('connection reset mid-body: retried, and the partial bytes are not kept', async () => {
    const r = await download(input(params([url('reset')])), testDeps(root), FAST);
    expect(r.bytes).toBe(BODY.length);
    expect(hits('/reset')).toBe(2);
  });

  test('truncated body (shorter than Content-Length): retried', async () => {
    const r = await download(input(params([url('truncated')])), testDeps(root), FAST);
    expect(r.md5).toBe(ARCHIVE_MD5);
    expect(hits('/truncated')).toBe(2);
  });

  test('stalled body: the idle timeout abandons it and the next attempt succeeds', async () => {
    const started = Date.now();
    const r = await download(input(params([url('stall')])), testDeps(root), FAST);
    expect(r.sha256).toBe(ARCHIVE_SHA256);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(hits('/stall/')).toBe(2);
  });

  test('no response headers at all: also an idle timeout', async () => {
    const r = await download(input(params([url('stallheaders')])), testDeps(root), FAST);
    expect(r.sha256).toBe(ARCHIVE_SHA256);
  });

  test('redirects are followed', async () => {
    const r = await download(input(params([url('redirect')])), testDeps(root), FAST);
    expect(r.sha256).toBe(ARCHIVE_SHA256);
  });

  test('wrong content: non-retryable, naming expected and actual digests and the URL', async () => {
    const err = await failure(download(input(params([url('wrong')], { sha256: ARCHIVE_SHA256 })), testDeps(root), FAST));
    expect(err).toBeInstanceOf(ApplicationFailure);
    const af = err as ApplicationFailure;
    expect(af.nonRetryable).toBe(true);
    expect(af.type).toBe('DigestMismatch');
    const page = Buffer.from('<html>this is not the archive you are looking for</html>');
    expect(af.message).toContain(ARCHIVE_MD5);
    expect(af.message).toContain(createHash('md5').update(page).digest('hex'));
    expect(af.message).toContain(ARCHIVE_SHA256);
    expect(af.message).toContain(createHash('sha256').update(page).digest('hex'));
    expect(af.message).toContain(url('wrong'));
    // A mismatch is not retried on the same mirror: the bytes would be the same.
    expect(hits('/wrong')).toBe(1);
    expect(listFiles(root).filter((f) => !f.startsWith('.tmp/'))).toEqual([]);
  });

  test('first mirror down (refused), second mirror used', async () => {
    const down = `http://127.0.0.1:${await deadPort()}/gestures-dataset.zip`;
    const r = await download(input(params([down, url('ok')])), testDeps(root), FAST);
    expect(r.source).toBe(url('ok'));
  });

  test('a wrong mirror then a good one: the good one wins', async () => {
    const r = await download(input(params([url('wrong'), url('missing'), url('ok')])), testDeps(root), FAST);
    expect(r.source).toBe(url('ok'));
  });

  test('every mirror failing for transient reasons: a retryable error naming each mirror and its error', async () => {
    const down = `http://127.0.0.1:${await deadPort()}/x.zip`;
    const err = await failure(download(input(params([url('always503'), down, url('missing')])), testDeps(root), FAST));
    expect(err).not.toBeInstanceOf(ApplicationFailure);
    expect(err.name).toBe('DownloadError');
    expect(err.message).toContain(`${url('always503')}: HTTP 503`);
    expect(err.message).toContain(`${down}: `);
    expect(err.message).toContain('ECONNREFUSED');
    expect(err.message).toContain(`${url('missing')}: HTTP 404`);
    expect(hits('/always503')).toBe(3);
    // A 404 will not heal within seconds: next mirror at once, no retries.
    expect(hits('/missing')).toBe(1);
  });

  test('cache hit: no network I/O at all, even with different mirrors', async () => {
    const deps = testDeps(root);
    const first = await download(input(params([url('ok')])), deps, FAST);
    const before = server.requests.length;
    const again = await download(input(params([url('ok')])), deps, FAST);
    const otherMirrors = await download(input(params([url('always503'), 'http://127.0.0.1:9/nowhere.zip'])), deps, FAST);
    expect(server.requests.length).toBe(before);
    expect(again.cached).toBe(true);
    expect(otherMirrors.cached).toBe(true);
    expect(again.ref).toEqual(first.ref);
    expect(otherMirrors.ref).toEqual(first.ref);
    expect(again.source).toBeUndefined();
    expect(again.sha256).toBe(ARCHIVE_SHA256);
  });
});

describe('download from file: URLs', () => {
  let root: string;
  beforeEach(() => {
    root = tempDir('download-file');
  });
  afterEach(() => removeDir(root));

  test('absolute file:/// URL', async () => {
    const r = await download(input(params([`file://${ARCHIVE}`], { sha256: ARCHIVE_SHA256 })), testDeps(root), FAST);
    expect(r.sha256).toBe(ARCHIVE_SHA256);
    expect(r.source).toBe(`file://${ARCHIVE}`);
  });

  test('relative file: URL, resolved against the working directory; the file name defaults from it', async () => {
    const rel = relative(process.cwd(), ARCHIVE);
    const p = params([`file:${rel}`]);
    delete p.filename;
    const r = await download(input(p), testDeps(root), FAST);
    expect(r.archive).toBe('gestures-dataset.zip');
    expect(r.md5).toBe(ARCHIVE_MD5);
  });

  test('a missing file is a mirror failure, then the next mirror is used', async () => {
    const r = await download(input(params([`file://${root}/nope.zip`, `file://${ARCHIVE}`])), testDeps(root), FAST);
    expect(r.source).toBe(`file://${ARCHIVE}`);
  });
});

describe('safe unpacking', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('unpack');
  });
  afterEach(() => removeDir(dir));

  function zipParams(zip: Buffer, extra: Partial<DownloadParams> = {}): DownloadParams {
    const path = join(dir, 'input.zip');
    writeFileSync(path, zip);
    return {
      urls: [`file://${path}`],
      md5: createHash('md5').update(zip).digest('hex'),
      filename: 'input.zip',
      unpack: true,
      max_unpacked_bytes: 1 << 20,
      ...extra,
    };
  }

  test('a well-formed zip unpacks into the artifact', async () => {
    const zip = makeZip([
      { name: 'top/' },
      { name: 'top/a.txt', data: 'alpha' },
      { name: 'top/sub/b.txt', data: 'beta '.repeat(1000), deflate: true },
      { name: 'top/x/../c.txt', data: 'inside after normalising' },
    ]);
    const deps = testDeps(join(dir, 'store'));
    const r = await download(input(zipParams(zip)), deps, FAST);
    expect(r.unpacked).toBe('unpacked');
    const unpacked = deps.store.path(r.ref, r.unpacked!);
    expect(listFiles(unpacked)).toEqual(['top/a.txt', 'top/c.txt', 'top/sub/b.txt']);
    expect(readFileSync(join(unpacked, 'top/sub/b.txt'), 'utf8')).toBe('beta '.repeat(1000));
  });

  test('an entry escaping with ../ is rejected (non-retryable) and nothing is written outside the target', async () => {
    const zip = makeZip([
      { name: 'ok.txt', data: 'fine' },
      { name: '../escaped.txt', data: 'gotcha' },
      { name: '../../escaped2.txt', data: 'gotcha' },
    ]);
    const store = join(dir, 'store');
    const err = await failure(download(input(zipParams(zip)), testDeps(store), FAST));
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).type).toBe('UnsafeArchive');
    expect(err.message).toContain('../escaped.txt');
    // The only file left anywhere is the input: no escaped file, no partial artifact.
    expect(listFiles(dir)).toEqual(['input.zip']);
  });

  test('direct unpack: ../, absolute and symlink entries are refused before anything lands outside', async () => {
    const target = join(dir, 'a', 'b', 'target');
    mkdirSync(target, { recursive: true });
    const cases: Array<[string, Parameters<typeof makeZip>[0]]> = [
      ['escapes', [{ name: 'x/../../escaped.txt', data: 'no' }]],
      ['absolute', [{ name: '/tmp/absolute-escape.txt', data: 'no' }]],
      ['symbolic link', [{ name: 'link', data: '/etc/passwd', mode: 0o120777 }]],
      ['special file', [{ name: 'fifo', data: '', mode: 0o010644 }]],
      ['escapes', [{ name: '..\\windows-style.txt', data: 'no' }]],
    ];
    for (const [why, entries] of cases) {
      const path = join(dir, 'bad.zip');
      writeFileSync(path, makeZip(entries));
      await expect(unpackZip(path, target, { maxBytes: 1 << 20 })).rejects.toThrow(UnsafeArchiveError);
      await expect(unpackZip(path, target, { maxBytes: 1 << 20 })).rejects.toThrow(why);
    }
    expect(listFiles(dir)).toEqual(['bad.zip']);
    expect(existsSync('/tmp/absolute-escape.txt')).toBe(false);
  });

  test('a zip bomb over max_unpacked_bytes is rejected', async () => {
    const bomb = makeZip([{ name: 'zeros.bin', data: Buffer.alloc(4 << 20), deflate: true }]);
    expect(bomb.length).toBeLessThan(10_000);
    const err = await failure(download(input(zipParams(bomb, { max_unpacked_bytes: 1 << 20 })), testDeps(join(dir, 'store')), FAST));
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).type).toBe('UnsafeArchive');
    expect(err.message).toContain('max_unpacked_bytes=1048576');
    expect(listFiles(dir)).toEqual(['input.zip']);
  });

  test('a bomb that lies about its size is stopped while inflating', async () => {
    const target = join(dir, 'target');
    mkdirSync(target);
    const path = join(dir, 'liar.zip');
    writeFileSync(path, makeZip([{ name: 'zeros.bin', data: Buffer.alloc(4 << 20), deflate: true, declaredSize: 10 }]));
    await expect(unpackZip(path, target, { maxBytes: 1 << 20 })).rejects.toThrow(/too many bytes|max_unpacked_bytes/);
    const written = listFiles(target).map((f) => readFileSync(join(target, f)).length);
    expect(Math.max(0, ...written)).toBeLessThanOrEqual(1 << 20);
  });

  test('the same path twice, or a file where a folder must go, is refused', async () => {
    const target = join(dir, 'target');
    mkdirSync(target);
    const path = join(dir, 'dup.zip');
    writeFileSync(
      path,
      makeZip([
        { name: 'a.txt', data: '1' },
        { name: 'a.txt', data: '2' },
      ]),
    );
    await expect(unpackZip(path, target, { maxBytes: 1 << 20 })).rejects.toThrow(/conflicting entries/);
    const fileThenFolder = join(dir, 'conflict.zip');
    writeFileSync(
      fileThenFolder,
      makeZip([
        { name: 'a', data: '1' },
        { name: 'a/b.txt', data: '2' },
      ]),
    );
    await expect(unpackZip(fileThenFolder, join(dir, 'target2'), { maxBytes: 1 << 20 })).rejects.toThrow(UnsafeArchiveError);
  });

  test('a file that is not a zip: non-retryable MalformedArchive', async () => {
    const notZip = Buffer.from('just some text, not an archive');
    const err = await failure(download(input(zipParams(notZip)), testDeps(join(dir, 'store')), FAST));
    expect((err as ApplicationFailure).type).toBe('MalformedArchive');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
  });
});
