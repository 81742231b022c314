/**
 * One trial of the gestures model through the JSON protocol of bench/tune-protocol.ts (one trial
 * in, per-epoch metrics out): the trainer that `npm run bench:tune` and bench/optuna_tune.py drive.
 * Training is ml/trainer.ts's `train`, resumed epoch by epoch from the trial's own checkpoints the
 * way activities/train.ts pauses and promotes a trial (`pause_at_epoch`): stopping after an epoch
 * keeps its checkpoint, and a later request with `resume_from` continues from it, bit-identical to
 * a run that never stopped.
 *
 *   node dist/bench/tune-trial.js [--padded <padded .arrow>] [--store <dir>] [--work <dir>]
 *                                 [--with '{"layers": 2}']
 *
 * --padded   the padding step's Arrow file; default: built once by the project's own download,
 *            dataset and padding steps into --store (~/.cache/durable-sweeps/bench-store)
 * --work     where each trial's checkpoint folder goes (default: <tmp>/durable-sweeps-tune-trials)
 * --with     train parameters every trial shares (a request's params override them)
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { toConfig, trainParams } from '../activities/train';
import { checkpointIntact, epochDirName, epochOfDirName } from '../ml/checkpoint';
import { readPadded, type PaddedData } from '../ml/padded-data';
import { train } from '../ml/trainer';
import { realPadded } from './real-data';
import { describeIssues, trialRequestSchema, type DoneEvent, type EpochEvent, type TrialRequest } from './tune-protocol';

/** Bad input: printed without a stack, exit code 2. */
class InputError extends Error {}

/** Reads stdin line by line; `null` at end of input. */
function lineReader(): () => Promise<string | null> {
  const it = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  return async () => {
    const next = await it.next();
    return next.done ? null : (next.value as string);
  };
}

function send(event: EpochEvent | DoneEvent): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError(`${where} is not JSON (${(err as Error).message}): ${text.slice(0, 200)}`);
  }
}

/** The checkpoint folder a segment trains in: a new one, or the one holding `resume_from` (which must be its newest epoch). */
function checkpointFolder(request: TrialRequest, work: string): string {
  if (request.resume_from === null) {
    mkdirSync(work, { recursive: true });
    return mkdtempSync(join(work, `${request.trial}-`));
  }
  const from = resolve(request.resume_from);
  const epoch = epochOfDirName(basename(from));
  if (epoch === undefined)
    throw new InputError(`request.resume_from: ${from} is not an epoch checkpoint folder (epoch-NNNN); pass an epoch event's "checkpoint"`);
  if (epoch !== request.from_epoch)
    throw new InputError(`request.resume_from: ${from} is the checkpoint of epoch ${epoch}, but from_epoch is ${request.from_epoch}`);
  if (!existsSync(from) || !checkpointIntact(from))
    throw new InputError(`request.resume_from: ${from} is missing or damaged; start the trial over (from_epoch 0)`);
  const dir = dirname(from);
  const later = readdirSync(dir)
    .map((n) => epochOfDirName(n))
    .filter((e): e is number => e !== undefined && e > epoch);
  if (later.length > 0) {
    throw new InputError(`request.resume_from: ${dir} already holds epoch ${Math.max(...later)} of this trial; resume from its newest checkpoint`);
  }
  return dir;
}

async function serve(data: () => Promise<PaddedData>, fixed: Record<string, unknown>, work: string): Promise<void> {
  const readLine = lineReader();
  const first = await readLine();
  if (first === null) throw new InputError('no request: the first line of input must be the trial request (JSON)');
  const parsed = trialRequestSchema.safeParse(parseJson(first, 'the request'));
  if (!parsed.success) throw new InputError(`invalid request: ${describeIssues(parsed.error.issues, 'request')}`);
  const request = parsed.data;
  const params = trainParams.safeParse({ ...fixed, ...request.params, seed: request.seed, epochs: request.to_epoch });
  if (!params.success) throw new InputError(`invalid request: ${describeIssues(params.error.issues, 'request.params')}`);
  const config = toConfig(params.data);
  const dir = checkpointFolder(request, work);
  const padded = await data();

  let last = request.from_epoch;
  let checkpoint = request.resume_from === null ? null : resolve(request.resume_from);
  let stoppedEarly = false;
  for (let epoch = request.from_epoch + 1; epoch <= request.to_epoch; epoch++) {
    // Train up to this epoch from the newest checkpoint: activities/train.ts's pause and promotion.
    const outcome = await train(padded, { ...config, epochs: epoch }, { checkpointDir: dir });
    const m = outcome.epochs[epoch - 1];
    if (!m) {
      stoppedEarly = true; // early stopping had ended the trial before this epoch
      break;
    }
    last = epoch;
    checkpoint = join(dir, epochDirName(epoch));
    stoppedEarly = outcome.stoppedEarly;
    const { epoch: _e, ...metrics } = m;
    send({ event: 'epoch', epoch, metrics, checkpoint });
    const reply = await readLine();
    const go = reply === null ? false : (parseJson(reply, `the answer to epoch ${epoch}`) as { continue?: unknown }).continue;
    if (reply !== null && typeof go !== 'boolean')
      throw new InputError(`the answer to epoch ${epoch} must be {"continue": true|false}, got ${reply.slice(0, 200)}`);
    if (!go || stoppedEarly) break;
  }
  send({ event: 'done', epoch: last, checkpoint, stopped_early: stoppedEarly });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      padded: { type: 'string' },
      store: { type: 'string', default: join(homedir(), '.cache', 'durable-sweeps', 'bench-store') },
      work: { type: 'string', default: join(tmpdir(), 'durable-sweeps-tune-trials') },
      with: { type: 'string', default: '{}' },
    },
  });
  const fixed = parseJson(values.with!, '--with');
  if (typeof fixed !== 'object' || fixed === null || Array.isArray(fixed)) throw new InputError('--with must be a JSON object of train parameters');
  const data = async () => {
    if (values.padded === undefined) return readPadded((await realPadded(values.store!)).path);
    if (!existsSync(values.padded)) throw new InputError(`--padded: no file at ${values.padded}`);
    return readPadded(values.padded);
  };
  await serve(data, fixed as Record<string, unknown>, values.work!);
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: Error) => {
      // A request the trainer refuses (bad values, a checkpoint of another trial) is bad input too.
      const input = err instanceof InputError || err.name === 'TrainConfigError' || err.name === 'CheckpointMismatchError';
      process.stderr.write(`tune-trial: ${input ? err.message : (err.stack ?? err.message)}\n`);
      process.exit(input ? 2 : 1);
    },
  );
}
