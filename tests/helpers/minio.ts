/**
 * A real S3-compatible object store for tests: MinIO, built from its Go module by
 * `scripts/setup-cluster-tools.sh`, run on loopback ports in its own process group, with a
 * throw-away data folder and root credentials made up per run.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './fixtures';
import { groupAlive, stopProcessGroup } from './processes';
import { describeIfAvailable } from './required';

const SETUP_HINT = 'run `bash scripts/setup-cluster-tools.sh` (builds MinIO from the Go module proxy)';

/** The MinIO binary: SWEEPS_MINIO, or where setup-cluster-tools.sh builds it. */
export function minioBinary(): string {
  const cache = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'durable-sweeps', 'cluster');
  return process.env.SWEEPS_MINIO ?? join(process.env.SWEEPS_CLUSTER_TOOLS ?? cache, 'minio', 'minio');
}

/** `describe` when MinIO is there (tests/helpers/required.ts says what happens otherwise). */
export function describeWithMinio(name: string, body: (binary: string) => void): void {
  const binary = minioBinary();
  const missing = existsSync(binary) ? undefined : `MinIO is missing at ${binary}: ${SETUP_HINT}`;
  describeIfAvailable(name, 'MinIO', missing, () => body(binary));
}

export interface MinioServer {
  endpoint: string;
  /** What a worker needs to reach it: the standard AWS settings, as a user would set them. */
  env: { AWS_ENDPOINT_URL_S3: string; AWS_ACCESS_KEY_ID: string; AWS_SECRET_ACCESS_KEY: string; AWS_REGION: string };
  /** A client with the root credentials, for setting up buckets and tampering with objects. */
  client: S3Client;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startMinio(binary: string, dir: string, timeoutMs = 30_000): Promise<MinioServer> {
  mkdirSync(join(dir, 'data'), { recursive: true });
  const [port, consolePort] = [await freePort(), await freePort()];
  const user = `test-${randomBytes(4).toString('hex')}`;
  const password = randomBytes(16).toString('hex');
  const log = openSync(join(dir, 'minio.log'), 'a');
  const child = spawn(binary, ['server', join(dir, 'data'), '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`], {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, MINIO_ROOT_USER: user, MINIO_ROOT_PASSWORD: password, MINIO_UPDATE: 'off' },
  });
  const pid = child.pid!;
  // Also when a test run dies without its afterAll: no server outlives it.
  const onExit = () => groupAlive(pid) && process.kill(-pid, 'SIGKILL');
  process.once('exit', onExit);

  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: user, secretAccessKey: password } });
  const stop = async () => {
    client.destroy();
    process.off('exit', onExit);
    await stopProcessGroup(pid);
  };

  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`minio exited with ${child.exitCode}: see ${join(dir, 'minio.log')}`);
    }
    const up = await fetch(`${endpoint}/minio/health/live`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) {
      return {
        endpoint,
        env: { AWS_ENDPOINT_URL_S3: endpoint, AWS_ACCESS_KEY_ID: user, AWS_SECRET_ACCESS_KEY: password, AWS_REGION: 'us-east-1' },
        client,
        createBucket: async (name) => {
          await client.send(new CreateBucketCommand({ Bucket: name }));
        },
        stop,
      };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error(`minio did not answer on ${endpoint} within ${timeoutMs} ms: see ${join(dir, 'minio.log')}`);
}

/** Runs `fn` with some environment variables set (undefined: unset), then puts them back. */
export async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(vars);
  try {
    return await fn();
  } finally {
    apply(saved);
  }
}
