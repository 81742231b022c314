import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, realpath, rename } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import { z } from 'zod';
import { MalformedArchiveError, UnsafeArchiveError, unpackZip } from './archive';
import { activityContext, activitySignal } from './context';
import type { ActivityDeps } from './deps';
import { badParameter, parseStepParams } from './params';
import { defineStep } from './step-module';
import type { DownloadResult, StepInput } from './types';

const md5 = z.string().regex(/^[0-9a-f]{32}$/, 'expected 32 lowercase hex digits (an md5 digest)');
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits (a sha256 digest)');

export const downloadParams = z
  .strictObject({
    urls: z
      .array(
        z
          .string()
          .min(1)
          .refine((u) => !/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(u), {
            message:
              'a URL with a user name or password: pipelines travel through workflow history, so credentials may not be in them; serve the file without credentials or copy it into a data root',
          })
          .refine((u) => /^(https?:\/\/|file:)/i.test(u), { message: 'use an http://, https:// or file: URL' }),
      )
      .min(1, 'give at least one URL to download from')
      .describe('Mirrors tried in order: http(s):// or file: URLs.'),
    filename: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/, 'a plain file name, no folders')
      .optional()
      .describe('File name in the cache; defaults to the last path segment of the first URL.'),
    md5: md5.optional().describe('Expected md5 of the archive (md5 or sha256 is required).'),
    sha256: sha256.optional().describe('Expected sha256 of the archive (md5 or sha256 is required).'),
    unpack: z.boolean().default(true).describe('Unpack a zip archive after verifying it.'),
    max_unpacked_bytes: z
      .number()
      .int()
      .positive()
      .default(1 << 30)
      .describe('Upper bound on the unpacked size, against zip bombs.'),
  })
  .refine((p) => p.md5 !== undefined || p.sha256 !== undefined, {
    message: 'declare md5 or sha256 so that the download can be verified',
  });
export type DownloadParams = z.infer<typeof downloadParams>;

/** Bump when the bytes this step commits for the same identity would change (e.g. unpack layout). */
export const DOWNLOAD_VERSION = 1;

/** Folder of the unpacked archive inside the artifact. */
export const UNPACKED_DIR = 'unpacked';

export interface DownloadTuning {
  /** Attempts on one mirror for transient failures before moving to the next mirror. */
  attemptsPerMirror: number;
  /** First backoff; doubles per attempt (with jitter) up to `maxBackoffMs`. */
  backoffMs: number;
  maxBackoffMs: number;
  /** A request that receives nothing for this long (headers or body) is abandoned as stalled. */
  idleTimeoutMs: number;
  maxRedirects: number;
  /** How often progress is heartbeated and logged while bytes flow. */
  progressIntervalMs: number;
}

export const defaultDownloadTuning: DownloadTuning = {
  attemptsPerMirror: 3,
  backoffMs: 1_000,
  maxBackoffMs: 15_000,
  idleTimeoutMs: 30_000,
  maxRedirects: 5,
  progressIntervalMs: 2_000,
};

/** The shape check the downstream `dataset` step uses to find its input among `needs` results. */
export function isDownloadResult(value: unknown): value is DownloadResult {
  const v = value as Partial<DownloadResult> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.archive === 'string' &&
    typeof v.sha256 === 'string' &&
    typeof v.bytes === 'number' &&
    typeof v.ref === 'object' &&
    v.ref !== null &&
    typeof v.ref.dir === 'string'
  );
}

type DownloadBody = Omit<DownloadResult, 'ref' | 'cached' | 'seconds'>;

export async function download(input: StepInput<DownloadParams>, deps: ActivityDeps, tuning: Partial<DownloadTuning> = {}): Promise<DownloadResult> {
  const started = Date.now();
  const t: DownloadTuning = { ...defaultDownloadTuning, ...tuning };
  const params = parseStepParams(downloadParams, input.params, input.step);
  const log = deps.logger.child({ step: input.step, activity: 'download' });
  const filename = params.filename ?? defaultFilename(params.urls[0]!, input.step);
  const unpack = params.unpack;
  const maxUnpacked = params.max_unpacked_bytes;

  // Keyed by what the bytes are, not where they come from: a new mirror list still hits the cache,
  // and a hit needs no network at all. max_unpacked_bytes only decides whether an unpack may
  // proceed, not what it produces, so it stays out of the key.
  const identity = {
    type: 'download',
    version: DOWNLOAD_VERSION,
    params: { md5: params.md5, sha256: params.sha256, filename, unpack },
    inputs: {},
  };

  const signal = activitySignal();
  const report = new Reporter(log, t.progressIntervalMs);
  const { ref, result, cached } = await deps.store
    .getOrBuild<DownloadBody>(identity, async (dir) => {
      const fetched = await fetchFromMirrors(params, filename, dir, t, report, signal, deps.dataRoots ?? []);
      let unpacked: string | undefined;
      if (unpack) {
        const target = join(dir, UNPACKED_DIR);
        const t0 = Date.now();
        try {
          const summary = await unpackZip(join(dir, filename), target, {
            maxBytes: maxUnpacked,
            signal,
            onProgress: (p) => {
              report.beat({ phase: 'unpack', ...p });
              log.debug({ ...p }, 'unpacking');
            },
          });
          log.info({ ...summary, seconds: (Date.now() - t0) / 1000 }, `unpacked ${filename}`);
        } catch (err) {
          if (err instanceof UnsafeArchiveError) {
            throw ApplicationFailure.nonRetryable(`${filename} (from ${fetched.source}): ${err.message}`, 'UnsafeArchive');
          }
          if (err instanceof MalformedArchiveError) {
            throw ApplicationFailure.nonRetryable(
              `${filename} (from ${fetched.source}) matches its declared digest but cannot be unpacked: ${err.message}` +
                ' (set unpack: false if it is not a zip archive)',
              'MalformedArchive',
            );
          }
          if (signal?.aborted) throw signal.reason ?? err;
          throw err;
        }
        unpacked = UNPACKED_DIR;
      }
      return { archive: filename, unpacked, md5: fetched.md5, sha256: fetched.sha256, bytes: fetched.bytes, source: fetched.source };
    })
    .finally(() => report.stop());

  const seconds = (Date.now() - started) / 1000;
  if (cached) {
    log.info({ dir: ref.dir }, `download ${filename}: cache hit`);
    const { source: _source, ...rest } = result;
    return { ...rest, ref, cached, seconds };
  }
  log.info({ dir: ref.dir, bytes: result.bytes, source: result.source, seconds }, `downloaded ${filename}`);
  return { ...result, ref, cached, seconds };
}

function defaultFilename(url: string, step: string): string {
  let last: string;
  if (/^https?:\/\//i.test(url)) {
    const segments = new URL(url).pathname.split('/').filter((s) => s !== '');
    last = decodeURIComponent(segments[segments.length - 1] ?? '');
  } else {
    last = basename(filePathOf(url));
  }
  if (!/^[A-Za-z0-9._-]+$/.test(last)) {
    throw badParameter(step, 'filename', `cannot derive a plain file name from ${url} (got "${last}"): set it`);
  }
  return last;
}

/**
 * Heartbeats progress as it happens and repeats the latest details on a timer, so that backoff
 * sleeps and slow mirrors never starve the heartbeat timeout (stalls are the idle timeout's job).
 */
class Reporter {
  private latest: Record<string, unknown> = { phase: 'start' };
  private readonly ticker: NodeJS.Timeout | undefined;
  private readonly context = activityContext();

  constructor(
    readonly log: Logger,
    intervalMs: number,
  ) {
    if (this.context) {
      this.ticker = setInterval(() => this.context?.heartbeat(this.latest), Math.max(1_000, intervalMs));
      this.ticker.unref();
    }
  }

  beat(details: Record<string, unknown>): void {
    this.latest = details;
    this.context?.heartbeat(details);
  }

  stop(): void {
    clearInterval(this.ticker);
  }
}

// ---------------------------------------------------------------------------------------------
// Mirrors, attempts and verification.

/** A failure worth retrying on the same mirror (network trouble, 5xx, stalls, truncation). */
class TransientError extends Error {
  override name = 'TransientError';
}

/** A failure that retrying this mirror will not fix (404, missing file), but another mirror might. */
class MirrorError extends Error {
  override name = 'MirrorError';
}

/** A `file:` source outside the worker's data roots: refused, whatever the file holds. */
class OutsideDataRoots extends MirrorError {
  override name = 'OutsideDataRoots';
}

class DigestMismatch extends Error {
  override name = 'DigestMismatch';
}

/** Every mirror failed and at least one failure might go away: Temporal's retry policy decides. */
export class DownloadError extends Error {
  override name = 'DownloadError';
}

interface Fetched {
  bytes: number;
  md5: string;
  sha256: string;
  source: string;
}

async function fetchFromMirrors(
  params: DownloadParams,
  filename: string,
  dir: string,
  t: DownloadTuning,
  report: Reporter,
  signal: AbortSignal | undefined,
  dataRoots: readonly string[],
): Promise<Fetched> {
  const part = join(dir, `${filename}.part`);
  const failures: Array<{ url: string; error: Error }> = [];

  for (const url of params.urls) {
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      report.beat({ phase: 'download', url, attempt, bytes: 0 });
      try {
        const got = await fetchOnce(url, part, t, report, signal, dataRoots);
        verifyDigests(url, params, got);
        await rename(part, join(dir, filename));
        return { ...got, source: url };
      } catch (err) {
        // Report the cancellation itself, not the socket error it caused.
        if (signal?.aborted) throw signal.reason ?? err;
        const error = err as Error;
        const retry = error instanceof TransientError && attempt < t.attemptsPerMirror;
        report.log.warn({ url, attempt, err: error.message }, retry ? 'download attempt failed, retrying' : 'mirror failed');
        if (!retry) {
          failures.push({ url, error });
          break;
        }
        await sleep(backoff(attempt, t), signal);
      }
    }
  }

  if (failures.every((f) => f.error instanceof DigestMismatch)) {
    throw ApplicationFailure.nonRetryable(
      `${filename}: no mirror served the declared content: ${failures.map((f) => f.error.message).join('; ')}`,
      'DigestMismatch',
    );
  }
  // No retry can fix a policy refusal or a wrong digest; only a change of settings or pipeline can.
  if (failures.every((f) => f.error instanceof DigestMismatch || f.error instanceof OutsideDataRoots)) {
    throw ApplicationFailure.nonRetryable(
      `${filename}: every mirror was refused: ` + failures.map((f, i) => `[${i + 1}] ${f.url}: ${f.error.message}`).join('; '),
      'OutsideDataRoots',
    );
  }
  throw new DownloadError(`${filename}: every mirror failed: ` + failures.map((f, i) => `[${i + 1}] ${f.url}: ${f.error.message}`).join('; '));
}

function verifyDigests(url: string, params: DownloadParams, got: { md5: string; sha256: string; bytes: number }): void {
  const wrong: string[] = [];
  if (params.md5 !== undefined && params.md5 !== got.md5) wrong.push(`md5 ${params.md5}, got ${got.md5}`);
  if (params.sha256 !== undefined && params.sha256 !== got.sha256) wrong.push(`sha256 ${params.sha256}, got ${got.sha256}`);
  if (wrong.length > 0) {
    throw new DigestMismatch(`${url}: digest mismatch: expected ${wrong.join('; expected ')} (${got.bytes} bytes)`);
  }
}

function backoff(attempt: number, t: DownloadTuning): number {
  const base = Math.min(t.maxBackoffMs, t.backoffMs * 2 ** (attempt - 1));
  // Jitter keeps a fleet of workers from retrying a recovering mirror in lockstep.
  return base / 2 + Math.random() * (base / 2);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolvePromise();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// One attempt: stream the source into `part` while hashing.

/** Hashes and writes chunks, and reports progress at most every `progressIntervalMs`. */
class Sink {
  private readonly md5 = createHash('md5');
  private readonly sha256 = createHash('sha256');
  bytes = 0;
  private readonly started = Date.now();
  private lastReport = Date.now();

  constructor(
    private readonly fh: import('node:fs/promises').FileHandle,
    private readonly url: string,
    private readonly total: number | undefined,
    private readonly t: DownloadTuning,
    private readonly report: Reporter,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    this.md5.update(chunk);
    this.sha256.update(chunk);
    this.bytes += chunk.length;
    await this.fh.write(chunk);
    const now = Date.now();
    if (now - this.lastReport >= this.t.progressIntervalMs) {
      this.lastReport = now;
      const progress = {
        phase: 'download',
        url: this.url,
        bytes: this.bytes,
        total: this.total,
        bytesPerSecond: Math.round(this.bytes / Math.max(0.001, (now - this.started) / 1000)),
      };
      this.report.beat(progress);
      this.report.log.debug(progress, 'downloading');
    }
  }

  digests(): { bytes: number; md5: string; sha256: string } {
    return { bytes: this.bytes, md5: this.md5.digest('hex'), sha256: this.sha256.digest('hex') };
  }
}

async function fetchOnce(
  url: string,
  part: string,
  t: DownloadTuning,
  report: Reporter,
  signal: AbortSignal | undefined,
  dataRoots: readonly string[],
): Promise<{ bytes: number; md5: string; sha256: string }> {
  const fh = await open(part, 'w');
  try {
    if (/^https?:\/\//i.test(url)) return await fetchHttp(new URL(url), url, fh, t, report, signal, t.maxRedirects);
    if (/^file:/i.test(url)) return await fetchFile(url, fh, t, report, signal, dataRoots);
    throw new MirrorError(`unsupported URL scheme (use http://, https:// or file:)`);
  } finally {
    await fh.close();
  }
}

/**
 * The real path of a `file:` source if it lies inside one of the data roots. Links are resolved
 * first, so a link inside a root cannot point the worker at a file outside it.
 */
async function insideDataRoots(path: string, dataRoots: readonly string[]): Promise<string> {
  const advice =
    dataRoots.length === 0
      ? 'this worker reads no local files; start it with SWEEPS_DATA_ROOTS=<folder> to allow a folder'
      : `this worker reads local files only under ${dataRoots.join(', ')}; add the folder to SWEEPS_DATA_ROOTS or move the file`;
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    // A missing file says nothing about the policy: check where it would be.
    real = await realpath(dirname(path)).then(
      (dir) => join(dir, basename(path)),
      () => path,
    );
  }
  for (const root of dataRoots) {
    const base = await realpath(root).catch(() => resolve(root));
    if (real === base || real.startsWith(base.endsWith(sep) ? base : base + sep)) return real;
  }
  throw new OutsideDataRoots(`${path} is outside the data roots (${advice})`);
}

/** `file:///abs/path`, and also `file:rel/path` relative to the working directory. */
function filePathOf(url: string): string {
  if (/^file:\/\//i.test(url)) return fileURLToPath(url);
  return resolve(process.cwd(), decodeURIComponent(url.replace(/^file:/i, '')));
}

async function fetchFile(
  url: string,
  fh: import('node:fs/promises').FileHandle,
  t: DownloadTuning,
  report: Reporter,
  signal: AbortSignal | undefined,
  dataRoots: readonly string[],
): Promise<{ bytes: number; md5: string; sha256: string }> {
  let path: string;
  try {
    path = filePathOf(url);
  } catch (err) {
    throw new MirrorError(`not a usable file URL: ${(err as Error).message}`);
  }
  path = await insideDataRoots(path, dataRoots);
  const sink = new Sink(fh, url, undefined, t, report);
  try {
    for await (const chunk of createReadStream(path, { signal, highWaterMark: 1 << 20 })) await sink.write(chunk as Buffer);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'EACCES' || code === 'ENOTDIR') {
      throw new MirrorError(`${path}: ${code}`);
    }
    if (signal?.aborted) throw err;
    throw new TransientError(`${path}: ${(err as Error).message}`);
  }
  return sink.digests();
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

async function fetchHttp(
  target: URL,
  original: string,
  fh: import('node:fs/promises').FileHandle,
  t: DownloadTuning,
  report: Reporter,
  signal: AbortSignal | undefined,
  redirectsLeft: number,
): Promise<{ bytes: number; md5: string; sha256: string }> {
  const get = target.protocol === 'https:' ? https.get : http.get;
  let stalled: TransientError | undefined;
  let req: http.ClientRequest | undefined;
  let res: http.IncomingMessage | undefined;
  let idle: NodeJS.Timeout | undefined;
  // Our own idle timer rather than socket timeouts: it covers connect, headers and every gap
  // between body chunks alike, and it is unaffected by keep-alive sockets changing hands.
  const touch = (): void => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      stalled = new TransientError(`stalled: no data for ${t.idleTimeoutMs} ms`);
      res?.destroy(stalled);
      req?.destroy(stalled);
    }, t.idleTimeoutMs);
  };

  let bytes = 0;
  let total: number | undefined;
  try {
    touch();
    res = await new Promise<http.IncomingMessage>((resolvePromise, reject) => {
      req = get(target, { headers: { 'accept-encoding': 'identity', 'user-agent': 'durable-sweeps' }, signal }, resolvePromise);
      req.on('error', reject);
    });
    touch();

    const status = res.statusCode ?? 0;
    if (REDIRECTS.has(status) && res.headers.location) {
      res.resume();
      clearTimeout(idle);
      if (redirectsLeft <= 0) throw new MirrorError(`too many redirects (last to ${res.headers.location})`);
      const next = new URL(res.headers.location, target);
      report.log.debug({ from: target.href, to: next.href }, 'following redirect');
      return await fetchHttp(next, original, fh, t, report, signal, redirectsLeft - 1);
    }
    if (status < 200 || status >= 300) {
      res.resume();
      const message = `HTTP ${status} ${res.statusMessage ?? ''}`.trim();
      if (status >= 500 || status === 408 || status === 429) throw new TransientError(message);
      throw new MirrorError(message);
    }

    const declared = res.headers['content-length'];
    total = declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : undefined;
    const sink = new Sink(fh, original, total, t, report);
    for await (const chunk of res) {
      touch();
      await sink.write(chunk as Buffer);
      bytes = sink.bytes;
    }
    bytes = sink.bytes;
    // Node usually notices a short body itself (the socket closes early), but a proxy or an agent
    // quirk can end the stream quietly: the length check makes truncation a retry, never a file.
    if (total !== undefined && bytes !== total) {
      throw new TransientError(`truncated body: received ${bytes} of ${total} bytes`);
    }
    return sink.digests();
  } catch (err) {
    if (stalled) throw stalled;
    if (err instanceof TransientError || err instanceof MirrorError) throw err;
    if (signal?.aborted) throw err;
    const e = err as NodeJS.ErrnoException;
    const where = res ? ` after ${bytes}${total !== undefined ? ` of ${total}` : ''} bytes` : '';
    const code = e.code && !e.message.includes(e.code) ? ` (${e.code})` : '';
    const what = e.message === 'aborted' ? 'connection closed before the body was complete' : e.message;
    throw new TransientError(`${what}${code}${where}`);
  } finally {
    clearTimeout(idle);
  }
}

export const downloadStep = defineStep({
  type: 'download',
  params: downloadParams,
  matrix: false,
  durability: {
    startToCloseTimeout: '20m',
    heartbeatTimeout: '1m',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
  },
  summary: (p) => {
    const name = p.filename ?? p.urls[0]?.split(/[/:]/).pop() ?? 'archive';
    const digest = p.md5 ? `md5 ${p.md5.slice(0, 12)}…` : `sha256 ${String(p.sha256).slice(0, 12)}…`;
    return `download ${name} (${digest})`;
  },
  // `--data` copies are mirrors tried first; their digest is still checked.
  addDataSources: (raw, sources) => ({ ...raw, urls: [...sources, ...(Array.isArray(raw.urls) ? raw.urls : [])] }),
  activity: download,
});
