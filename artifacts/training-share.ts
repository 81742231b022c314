import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { readdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import { CHECKPOINT_STATE_FILE, CHECKPOINT_TEMP_PREFIX, checkpointIntact, epochOfDirName } from '../ml/checkpoint';
import type { ArtifactStore, WorkShare } from './store';

const TRACKING_STATE = 'tracking.json';

/**
 * Moves an unfinished trial between machines when the store's work folders are not shared (a
 * bucket store): its newest epoch checkpoint, so that a trial interrupted on one machine resumes
 * from that epoch on another, and its tracking state (the MLflow run to continue). Does nothing on
 * a folder store, whose work folders every worker already sees.
 *
 * Work folders (`<root>/work/<type>/<key>`): `train` holds the checkpoints (`epoch-NNNN/`), and
 * `tracking` the tracker's state; both keyed by the trial's cache key.
 */
export class TrainingShare {
  private readonly share?: WorkShare;
  /** The newest checkpoint written and not yet saved: saving only the newest keeps up with any epoch rate. */
  private pending?: string;
  private saving?: Promise<void>;

  constructor(
    store: ArtifactStore,
    private readonly key: string,
    private readonly checkpointDir: string,
    private readonly trackingDir: string,
    private readonly log: Pick<Logger, 'info' | 'warn'>,
  ) {
    this.share = store.workShare;
  }

  static async open(store: ArtifactStore, key: string, log: Pick<Logger, 'info' | 'warn'>): Promise<TrainingShare> {
    return new TrainingShare(store, key, await store.workDir('train', key), await store.workDir('tracking', key), log);
  }

  /**
   * Before training: brings the newest saved checkpoint here when it is newer than every local
   * one, and the tracking state when there is none here. Returns the epoch brought, if any.
   */
  async restore(): Promise<number | undefined> {
    const share = this.share;
    if (!share) return undefined;
    if (!existsSync(join(this.trackingDir, TRACKING_STATE)) && (await share.list('tracking', this.key)).includes(TRACKING_STATE)) {
      await share.restore('tracking', this.key, TRACKING_STATE, join(this.trackingDir, TRACKING_STATE));
    }
    const newestHere = Math.max(
      0,
      ...this.localEpochs()
        .filter((e) => checkpointIntact(join(this.checkpointDir, e.name)))
        .map((e) => e.epoch),
    );
    for (const { name, epoch, files } of savedCheckpoints(await share.list('train', this.key))) {
      if (epoch <= newestHere) break;
      // Named like the trainer's own unfinished folders, so that a crash here leaves nothing it would read.
      const tmp = join(this.checkpointDir, `${CHECKPOINT_TEMP_PREFIX}restore-${randomBytes(4).toString('hex')}`);
      try {
        for (const file of files) await share.restore('train', this.key, `${name}/${file}`, join(tmp, file));
        if (checkpointIntact(tmp)) {
          await rm(join(this.checkpointDir, name), { recursive: true, force: true });
          await rename(tmp, join(this.checkpointDir, name));
          this.log.info({ epoch }, 'checkpoint restored from the artifact store');
          return epoch;
        }
        this.log.warn({ epoch }, 'a saved checkpoint is damaged: trying an older one');
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    }
    return undefined;
  }

  /** After each epoch: saves the checkpoint folder (and the tracking state) in the background. */
  checkpointWritten(folder: string): void {
    if (!this.share) return;
    this.pending = folder;
    this.saving ??= this.drain().finally(() => (this.saving = undefined));
  }

  /** Waits for the saves under way (before the trial ends, or gives up after a failure). */
  async flush(): Promise<void> {
    await this.saving;
  }

  private async drain(): Promise<void> {
    while (this.pending !== undefined) {
      const folder = this.pending;
      this.pending = undefined;
      try {
        await this.save(folder);
      } catch (err) {
        // Training goes on: the next epoch's save tries again, and only a move to another machine loses epochs.
        this.log.warn({ checkpoint: basename(folder), err }, 'could not save the checkpoint to the artifact store');
      }
    }
  }

  private async save(folder: string): Promise<void> {
    const name = basename(folder);
    // The state file last: a saved folder that has it is complete, as on disk.
    const files = (await readdir(folder)).sort((a, b) => Number(a === CHECKPOINT_STATE_FILE) - Number(b === CHECKPOINT_STATE_FILE) || (a < b ? -1 : 1));
    await this.share!.save(
      'train',
      this.key,
      files.map((f) => `${name}/${f}`),
    );
    if (existsSync(join(this.trackingDir, TRACKING_STATE))) await this.share!.save('tracking', this.key, [TRACKING_STATE]);
  }

  private localEpochs(): Array<{ name: string; epoch: number }> {
    return readdirSync(this.checkpointDir).flatMap((name) => {
      const epoch = epochOfDirName(name);
      return epoch === undefined ? [] : [{ name, epoch }];
    });
  }
}

/** Saved checkpoint folders that are complete (have their state file), newest first. */
function savedCheckpoints(saved: string[]): Array<{ name: string; epoch: number; files: string[] }> {
  const folders = new Map<string, string[]>();
  for (const path of saved) {
    const [name, file, ...deeper] = path.split('/');
    if (name === undefined || file === undefined || deeper.length > 0 || epochOfDirName(name) === undefined) continue;
    folders.set(name, [...(folders.get(name) ?? []), file]);
  }
  return [...folders]
    .filter(([, files]) => files.includes(CHECKPOINT_STATE_FILE))
    .map(([name, files]) => ({ name, epoch: epochOfDirName(name)!, files }))
    .sort((a, b) => b.epoch - a.epoch);
}
