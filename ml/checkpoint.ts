import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Per-epoch training checkpoints: `<dir>/epoch-NNNN/` with
 *   weights.bin    every parameter, float32 little-endian, concatenated in `params` order
 *   optimizer.bin  Adam's m then v for every parameter, same layout
 *   state.json     everything else, with the sha256 of both binaries
 * A checkpoint is written into a temporary folder and renamed into place, so a folder
 * named epoch-NNNN is either complete or was damaged afterwards (then the digests catch it).
 */

export const CHECKPOINT_FORMAT = 'durable-sweeps/gru-checkpoint@1';
const EPOCH_DIR = /^epoch-(\d{4,})$/;
/** Folders starting so are unfinished; `latestCheckpoint` removes them. */
export const CHECKPOINT_TEMP_PREFIX = '.tmp-epoch-';
/** The checkpoint's description (and the binaries' digests); a shared copy (TrainingShare) saves it last. */
export const CHECKPOINT_STATE_FILE = 'state.json';

export interface BinaryRef {
  file: string;
  sha256: string;
  floats: number;
}

/** The JSON part of a checkpoint. `T` is the trainer's own payload (config, counters, metrics). */
export interface CheckpointState<T> {
  format: typeof CHECKPOINT_FORMAT;
  epoch: number;
  /** Identifies the run (config + data) the checkpoint belongs to. */
  fingerprint: string;
  params: Array<{ name: string; shape: number[] }>;
  weights: BinaryRef;
  optimizer: BinaryRef;
  payload: T;
}

export interface Checkpoint<T> {
  path: string;
  state: CheckpointState<T>;
  weights: Float32Array;
  optimizer: Float32Array;
}

export function epochDirName(epoch: number): string {
  return `epoch-${String(epoch).padStart(4, '0')}`;
}

/** The epoch of a checkpoint folder's name, or undefined when the name is not one. */
export function epochOfDirName(name: string): number | undefined {
  const match = EPOCH_DIR.exec(name);
  return match ? Number(match[1]) : undefined;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function bytesOf(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** A copy, because a Buffer from readFileSync may sit at an offset not aligned for floats. */
function floatsOf(bytes: Buffer): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new Error(`${bytes.byteLength} bytes is not a whole number of float32`);
  const out = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** On libuv's threads, like the writes: the training loop goes on meanwhile. */
async function fsyncDir(dir: string): Promise<void> {
  try {
    const handle = await fs.promises.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic there.
  }
}

// JSON has no NaN or ±Infinity (a diverged run's losses); keep them instead of turning them into null.
function encodeNumbers(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? { $number: String(value) } : value;
}

function decodeNumbers(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && '$number' in value) {
    return Number((value as { $number: string }).$number);
  }
  return value;
}

/** The three files of a checkpoint, computed from copies the caller no longer changes. */
function checkpointFiles<T>(
  epoch: number,
  fingerprint: string,
  params: Array<{ name: string; shape: number[] }>,
  weights: Float32Array,
  optimizer: Float32Array,
  payload: T,
): { weights: Uint8Array; optimizer: Uint8Array; state: string } {
  const w = bytesOf(weights);
  const o = bytesOf(optimizer);
  const state: CheckpointState<T> = {
    format: CHECKPOINT_FORMAT,
    epoch,
    fingerprint,
    params,
    weights: { file: 'weights.bin', sha256: sha256(w), floats: weights.length },
    optimizer: { file: 'optimizer.bin', sha256: sha256(o), floats: optimizer.length },
    payload,
  };
  return { weights: w, optimizer: o, state: JSON.stringify(state, encodeNumbers, 2) };
}

/** Moves a complete temp folder into place as `finalPath` (see writeCheckpoint). */
async function publish<T>(dir: string, temp: string, finalPath: string, fingerprint: string): Promise<string> {
  if (fs.existsSync(finalPath)) {
    // Left by an earlier attempt of the same run (same fingerprint, same epoch): runs are
    // deterministic, so a valid one holds the same numbers; a damaged one is replaced.
    if (readCheckpoint<T>(finalPath, fingerprint) !== null) {
      fs.rmSync(temp, { recursive: true, force: true });
      return finalPath;
    }
    fs.rmSync(finalPath, { recursive: true, force: true });
  }
  fs.renameSync(temp, finalPath);
  await fsyncDir(dir);
  return finalPath;
}

async function writeDurablyAsync(file: string, data: Uint8Array | string): Promise<void> {
  const handle = await fs.promises.open(file, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes a checkpoint folder: files into a temp folder, fsynced, then renamed into place, so the
 * folder appears complete or not at all. The writes and fsyncs run on libuv's threads, so training
 * goes on while the disk catches up; the arrays are encoded before this returns (the caller may
 * change them).
 */
export function writeCheckpoint<T>(
  dir: string,
  epoch: number,
  fingerprint: string,
  params: Array<{ name: string; shape: number[] }>,
  weights: Float32Array,
  optimizer: Float32Array,
  payload: T,
): Promise<string> {
  const files = checkpointFiles(epoch, fingerprint, params, weights.slice(), optimizer.slice(), payload);
  const finalPath = path.join(dir, epochDirName(epoch));
  return (async () => {
    await fs.promises.mkdir(dir, { recursive: true });
    const temp = await fs.promises.mkdtemp(path.join(dir, `${CHECKPOINT_TEMP_PREFIX}${String(epoch).padStart(4, '0')}-`));
    try {
      await fs.promises.chmod(temp, 0o755);
      // All three side by side: the temp folder is nobody's checkpoint until the rename below,
      // which waits for every file's fsync (one fsync's wait per checkpoint instead of two).
      await Promise.all([
        writeDurablyAsync(path.join(temp, 'weights.bin'), files.weights),
        writeDurablyAsync(path.join(temp, 'optimizer.bin'), files.optimizer),
        writeDurablyAsync(path.join(temp, CHECKPOINT_STATE_FILE), files.state),
      ]);
      await fsyncDir(temp);
      return await publish<T>(dir, temp, finalPath, fingerprint);
    } catch (err) {
      await fs.promises.rm(temp, { recursive: true, force: true });
      throw err;
    }
  })();
}

export class CheckpointMismatchError extends Error {
  override name = 'CheckpointMismatchError';
}

/** A checkpoint folder's contents when it is complete and its binaries match their digests, else null. */
function loadIntact<T>(folder: string): Omit<Checkpoint<T>, 'path'> | null {
  try {
    const state = JSON.parse(fs.readFileSync(path.join(folder, CHECKPOINT_STATE_FILE), 'utf8'), decodeNumbers) as CheckpointState<T>;
    if (state.format !== CHECKPOINT_FORMAT) return null;
    const load = (ref: BinaryRef): Float32Array | null => {
      const bytes = fs.readFileSync(path.join(folder, path.basename(ref.file)));
      if (sha256(bytes) !== ref.sha256) return null;
      const floats = floatsOf(bytes);
      return floats.length === ref.floats ? floats : null;
    };
    const weights = load(state.weights);
    const optimizer = load(state.optimizer);
    return weights === null || optimizer === null ? null : { state, weights, optimizer };
  } catch {
    return null;
  }
}

/** True when a checkpoint folder is complete and undamaged, whichever run it belongs to (e.g. after a copy). */
export function checkpointIntact(folder: string): boolean {
  return loadIntact(folder) !== null;
}

/**
 * Reads and verifies one checkpoint folder. Returns null when it is incomplete or damaged;
 * throws CheckpointMismatchError when it is intact but belongs to a different run.
 */
export function readCheckpoint<T>(folder: string, fingerprint: string): Checkpoint<T> | null {
  const loaded = loadIntact<T>(folder);
  if (loaded === null) return null;
  if (loaded.state.fingerprint !== fingerprint) {
    throw new CheckpointMismatchError(
      `checkpoint ${folder} belongs to a different training run (config or data differ); ` +
        'use a separate checkpoint folder per trial, or delete this one to start over',
    );
  }
  return { path: folder, ...loaded };
}

/**
 * The newest intact checkpoint in `dir`, or null. Damaged checkpoints newer than it and
 * leftover temporary folders are removed, so the next write starts from a clean folder.
 */
export function latestCheckpoint<T>(dir: string, fingerprint: string): Checkpoint<T> | null {
  if (!fs.existsSync(dir)) return null;
  const entries = fs.readdirSync(dir, { withFileTypes: true });
  for (const e of entries) {
    if (e.name.startsWith(CHECKPOINT_TEMP_PREFIX)) fs.rmSync(path.join(dir, e.name), { recursive: true, force: true });
  }
  const epochs = entries
    .filter((e) => e.isDirectory())
    .map((e) => ({ name: e.name, match: EPOCH_DIR.exec(e.name) }))
    .filter((e): e is { name: string; match: RegExpExecArray } => e.match !== null)
    .map((e) => ({ name: e.name, epoch: Number(e.match[1]) }))
    .sort((a, b) => b.epoch - a.epoch);
  for (const { name, epoch } of epochs) {
    const folder = path.join(dir, name);
    const cp = readCheckpoint<T>(folder, fingerprint);
    if (cp !== null && cp.state.epoch === epoch) return cp;
    fs.rmSync(folder, { recursive: true, force: true });
  }
  return null;
}
