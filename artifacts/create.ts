import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { LocalArtifactStore } from './local-store';
import { Bucket, type S3Settings } from './s3-bucket';
import { S3ArtifactStore } from './s3-store';
import type { ArtifactStore } from './store';

/** A setting that cannot work as given; the message names it and says what to write instead. */
export class ArtifactStoreConfigError extends Error {
  override name = 'ArtifactStoreConfigError';
}

export type ArtifactsLocation = { kind: 'folder'; path: string } | { kind: 's3'; bucket: string; prefix: string };

const USAGE = 'use a folder path, or s3://<bucket>[/<prefix>] for an S3-compatible bucket';

/** Reads SWEEPS_ARTIFACTS: a folder path (or file: URL), or `s3://bucket/prefix`. */
export function parseArtifactsLocation(value: string, setting = 'SWEEPS_ARTIFACTS'): ArtifactsLocation {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'folder', path: resolve(value) };
  if (scheme === 'file') return { kind: 'folder', path: fileURLToPath(value) };
  if (scheme !== 's3') throw new ArtifactStoreConfigError(`${setting}=${value}: unsupported scheme "${scheme}://"; ${USAGE}`);
  const [bucket = '', ...parts] = value.slice('s3://'.length).split('/');
  if (bucket.includes('@') || bucket.includes(':')) {
    throw new ArtifactStoreConfigError(
      `${setting}: credentials and endpoints do not belong in the artifact location (it is shown in logs); ` +
        "set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and AWS_ENDPOINT_URL_S3 in the worker's environment",
    );
  }
  if (bucket === '') throw new ArtifactStoreConfigError(`${setting}=${value}: no bucket name; ${USAGE}`);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new ArtifactStoreConfigError(
      `${setting}=${value}: "${bucket}" is not a valid bucket name (3–63 characters: lower-case letters, digits, dots, hyphens)`,
    );
  }
  const prefix = parts.filter((p) => p !== '').join('/');
  if (parts.some((p) => p === '.' || p === '..')) throw new ArtifactStoreConfigError(`${setting}=${value}: the prefix must not contain . or .. segments`);
  return { kind: 's3', bucket, prefix };
}

/**
 * The S3 connection settings from the standard AWS environment (the SDK itself also reads
 * credentials and profiles from there), plus SWEEPS_S3_FORCE_PATH_STYLE.
 */
export function s3SettingsFromEnv(location: { bucket: string; prefix: string }, env: NodeJS.ProcessEnv = process.env): S3Settings {
  const endpointSetting = env.AWS_ENDPOINT_URL_S3 ? 'AWS_ENDPOINT_URL_S3' : env.AWS_ENDPOINT_URL ? 'AWS_ENDPOINT_URL' : undefined;
  const endpoint = endpointSetting ? env[endpointSetting] : undefined;
  if (endpointSetting && endpoint && !/^https?:\/\/[^/]+/i.test(endpoint)) {
    throw new ArtifactStoreConfigError(`${endpointSetting}=${endpoint}: expected an http:// or https:// URL of the S3 server (e.g. http://127.0.0.1:9000)`);
  }
  // Self-hosted servers (MinIO…) are addressed by path; AWS itself prefers bucket host names.
  const forcePathStyle = booleanSetting(env, 'SWEEPS_S3_FORCE_PATH_STYLE', endpoint !== undefined);
  return { ...location, endpoint, forcePathStyle, region: env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined };
}

function booleanSetting(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ArtifactStoreConfigError(`${name}=${env[name]}: expected true or false`);
}

/**
 * The worker's artifact store, from its configuration: a folder, or an S3-compatible bucket with a
 * local cache under `artifactsCache`. A bucket is checked before this returns (it exists, answers,
 * accepts these credentials and our writes), so that bad settings stop a worker at its start with
 * a message that names the setting, rather than failing its first step.
 */
export async function createArtifactStore(config: { artifacts: string; artifactsCache: string }, logger?: Logger): Promise<ArtifactStore> {
  const location = parseArtifactsLocation(config.artifacts);
  if (location.kind === 'folder') return new LocalArtifactStore(location.path);
  const settings = s3SettingsFromEnv(location);
  const bucket = await Bucket.connect(settings);
  try {
    await bucket.check();
  } catch (err) {
    bucket.close();
    throw new ArtifactStoreConfigError(`SWEEPS_ARTIFACTS=${config.artifacts}: ${(err as Error).message}`, { cause: err });
  }
  // One cache folder per bucket and prefix: two stores never mistake each other's artifacts.
  const cache = join(resolve(config.artifactsCache), location.bucket, ...location.prefix.split('/').filter(Boolean));
  return new S3ArtifactStore(bucket, cache, logger);
}
