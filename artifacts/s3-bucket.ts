import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import type { FileDigest } from './store';

/**
 * Where and how to reach the bucket. Credentials are deliberately not here: the AWS SDK reads them
 * from the worker's environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance
 * roles…), so they never enter a workflow input, a history or a log.
 */
export interface S3Settings {
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing `/` ('' for the bucket's root). */
  prefix: string;
  /** An S3-compatible server (MinIO…); undefined for AWS S3 itself. */
  endpoint?: string;
  /** Path-style URLs (`http://host/bucket/key`), which MinIO and most self-hosted servers need. */
  forcePathStyle: boolean;
  region?: string;
}

/** A problem with the bucket's configuration or reachability, worded for the person who can fix it. */
export class S3StoreError extends Error {
  override name = 'S3StoreError';
}

/** Files up to this size are uploaded from memory, so that the SDK can retry a failed request itself. */
const IN_MEMORY_UPLOAD = 64 * 1024 * 1024;
/** The largest object a single PUT may create (S3's limit; larger ones need multipart uploads). */
const SINGLE_PUT_LIMIT = 5 * 1024 * 1024 * 1024;

/**
 * The few object operations the artifact store needs, on keys relative to the store's prefix,
 * with errors that name the object and say what to do.
 */
export class Bucket {
  private constructor(
    readonly settings: S3Settings,
    private readonly client: S3Client,
  ) {}

  static async connect(settings: S3Settings): Promise<Bucket> {
    const options = {
      endpoint: settings.endpoint,
      forcePathStyle: settings.forcePathStyle,
      // Only what S3 requires: our own sha256 digests check every byte end to end, and the SDK's
      // default extra checksums (aws-chunked uploads) are not understood by every S3-compatible server.
      requestChecksumCalculation: 'WHEN_REQUIRED' as const,
      responseChecksumValidation: 'WHEN_REQUIRED' as const,
      // An unreachable endpoint should fail in seconds, not hang a worker's start.
      requestHandler: { connectionTimeout: 5_000, socketTimeout: 120_000 },
    };
    let region = settings.region;
    if (region === undefined) {
      // AWS_REGION or a profile's region, as the SDK finds them; a self-hosted server usually ignores it.
      region = await new S3Client(options).config.region().catch(() => undefined);
      if (region === undefined && settings.endpoint !== undefined) region = 'us-east-1';
    }
    return new Bucket(settings, new S3Client({ ...options, region }));
  }

  /** `s3://bucket/prefix/key`, for messages. */
  uri(key = ''): string {
    return `s3://${this.settings.bucket}/${this.fullKey(key)}`;
  }

  private fullKey(key: string): string {
    return this.settings.prefix ? (key ? `${this.settings.prefix}/${key}` : `${this.settings.prefix}/`) : key;
  }

  /** The object's user metadata, or undefined when there is no such object. */
  async head(key: string): Promise<Record<string, string> | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.settings.bucket, Key: this.fullKey(key) }));
      return res.Metadata ?? {};
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.explain(err, `reading ${this.uri(key)}`);
    }
  }

  /** The whole object and its user metadata, or undefined when there is none (for objects that fit in memory). */
  async get(key: string): Promise<{ body: Buffer; metadata: Record<string, string> } | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.fullKey(key) }));
      return { body: Buffer.from(await res.Body!.transformToByteArray()), metadata: res.Metadata ?? {} };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.explain(err, `reading ${this.uri(key)}`);
    }
  }

  /** Streams the object into the file `path` and returns what arrived; undefined when there is no such object. */
  async download(key: string, path: string): Promise<FileDigest | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.fullKey(key) }));
      const hash = createHash('sha256');
      let bytes = 0;
      await pipeline(
        res.Body as Readable,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            hash.update(chunk);
            bytes += chunk.length;
            yield chunk;
          }
        },
        createWriteStream(path),
      );
      return { sha256: hash.digest('hex'), bytes };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.explain(err, `downloading ${this.uri(key)}`);
    }
  }

  /** Uploads a local file of `bytes` bytes. */
  async upload(key: string, path: string, bytes: number): Promise<void> {
    if (bytes > SINGLE_PUT_LIMIT) {
      throw new S3StoreError(
        `${path} is ${bytes} bytes: larger than one S3 upload can be (5 GiB); such artifacts need a folder store (SWEEPS_ARTIFACTS=<folder>)`,
      );
    }
    const body = bytes <= IN_MEMORY_UPLOAD ? await readFile(path) : createReadStream(path);
    await this.put(key, body, { contentLength: bytes });
  }

  /**
   * Writes an object. With `ifAbsent`, only when no object has that key (S3's conditional write):
   * returns false when one already existed, so that the first of two writers wins.
   */
  async put(
    key: string,
    body: PutObjectCommandInput['Body'],
    options: { ifAbsent?: boolean; metadata?: Record<string, string>; contentLength?: number } = {},
  ): Promise<boolean> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.settings.bucket,
          Key: this.fullKey(key),
          Body: body,
          ContentLength: options.contentLength,
          Metadata: options.metadata,
          IfNoneMatch: options.ifAbsent ? '*' : undefined,
        }),
      );
      return true;
    } catch (err) {
      if (options.ifAbsent && httpStatus(err) === 412) return false;
      throw this.explain(err, `writing ${this.uri(key)}`);
    }
  }

  /** Keys under `prefix` (relative to it), in the bucket's order, every page of them (S3 answers 1,000 a page). */
  async list(prefix: string, pageSize = 1000): Promise<string[]> {
    const keys: string[] = [];
    const full = this.fullKey(prefix);
    try {
      for await (const page of paginateListObjectsV2({ client: this.client, pageSize }, { Bucket: this.settings.bucket, Prefix: full })) {
        for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key.slice(full.length));
      }
    } catch (err) {
      throw this.explain(err, `listing ${this.uri(prefix)}`);
    }
    return keys;
  }

  async remove(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.settings.bucket, Key: this.fullKey(key) }));
    } catch (err) {
      throw this.explain(err, `deleting ${this.uri(key)}`);
    }
  }

  /**
   * Proves at worker start that the bucket exists, answers and takes our writes, so that a wrong
   * setting fails there, with a message, rather than in the middle of the first step.
   */
  async check(): Promise<void> {
    try {
      await this.client.send(new ListObjectsV2Command({ Bucket: this.settings.bucket, Prefix: this.fullKey(''), MaxKeys: 1 }));
    } catch (err) {
      throw this.explain(err, `listing ${this.uri()}`);
    }
    const probe = `.probe/${hostname()}-${process.pid}`;
    await this.put(probe, 'durable-sweeps write check');
    // Some policies allow writes but not deletes; the probe is tiny and harmless then.
    await this.remove(probe).catch(() => undefined);
  }

  close(): void {
    this.client.destroy();
  }

  private explain(err: unknown, doing: string): Error {
    const e = err as Error & { code?: string; Code?: string };
    const code = e.Code ?? e.name;
    const status = httpStatus(err);
    const where = this.settings.endpoint ? `the S3 endpoint ${this.settings.endpoint}` : 'AWS S3';
    const endpointSetting = 'AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL)';
    let advice: string | undefined;
    if (e.name === 'CredentialsProviderError' || /Could not load credentials/i.test(e.message)) {
      advice = "no S3 credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the worker's environment";
    } else if (/Region is missing/i.test(e.message)) {
      advice = 'no AWS region is configured: set AWS_REGION';
    } else if (code === 'InvalidAccessKeyId') {
      advice = `${where} does not know this access key: check AWS_ACCESS_KEY_ID (or the AWS_PROFILE in use)`;
    } else if (code === 'SignatureDoesNotMatch') {
      advice = `${where} rejected the request signature: check AWS_SECRET_ACCESS_KEY (or the AWS_PROFILE in use)`;
    } else if (code === 'NoSuchBucket') {
      advice = `the bucket "${this.settings.bucket}" does not exist at ${where}: create it (e.g. \`aws s3 mb s3://${this.settings.bucket}\` or \`mc mb <alias>/${this.settings.bucket}\`) or correct SWEEPS_ARTIFACTS`;
    } else if (code === 'InvalidBucketName') {
      advice = `"${this.settings.bucket}" is not a valid bucket name: correct SWEEPS_ARTIFACTS`;
    } else if (code === 'AccessDenied' || status === 403) {
      advice = `access denied: the credentials need s3:ListBucket on the bucket and s3:GetObject, s3:PutObject, s3:DeleteObject under ${this.uri()}`;
    } else if (code === 'PermanentRedirect' || code === 'AuthorizationHeaderMalformed' || status === 301) {
      advice = `the bucket is in another region than the one configured: set AWS_REGION to the bucket's region`;
    } else if (networkError(e)) {
      advice = `cannot reach ${where} (${networkError(e)}): check ${endpointSetting} and that the server is running`;
    }
    const wrapped = new S3StoreError(`${doing}: ${advice ?? `${code}: ${e.message}`}`);
    wrapped.cause = err;
    return wrapped;
  }
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const name = (err as Error).name;
  return name === 'NoSuchKey' || name === 'NotFound' || (httpStatus(err) === 404 && name !== 'NoSuchBucket');
}

/**
 * The network failure behind an error (`ECONNREFUSED: connect …`), or undefined. Read from the
 * message too: the SDK re-wraps errors it does not recognise as its own (under jest, all of them)
 * and keeps only their text.
 */
function networkError(e: Error & { code?: string }): string | undefined {
  if (e.name === 'TimeoutError') return `timed out: ${e.message}`;
  const code = /\b(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ECONNRESET|EPIPE)\b/.exec(`${e.code ?? ''} ${e.message}`)?.[1];
  return code && `${code}: ${e.message.replace(/^AWS SDK error wrapper for (Error: )?/, '')}`;
}
