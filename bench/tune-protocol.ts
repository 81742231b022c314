import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { z } from 'zod';

/**
 * The one-trial JSON protocol of `npm run bench:tune` (bench/optuna_tune.py speaks it too): one
 * trainer process per trial segment, lines of JSON both ways.
 *
 *   stdin, first line   {"trial": id, "seed": int, "params": {...}, "from_epoch": int,
 *                        "to_epoch": int, "resume_from": checkpoint-or-null}
 *   stdout, per epoch   {"event": "epoch", "epoch": e, "metrics": {"valid_acc": …, …}, "checkpoint": path}
 *   stdin, per epoch    {"continue": true|false}   (false: stop after that epoch, keeping its checkpoint)
 *   stdout, at the end  {"event": "done", "epoch": e, "checkpoint": path-or-null, "stopped_early": bool}
 *
 * `params` are the train step's parameters (activities/train.ts) without `seed`, `epochs` and
 * `pause_at_epoch`, which the request's own fields replace. A segment that continues a trial
 * (a promotion) sets `from_epoch` to the epoch of the checkpoint it names in `resume_from`. Every
 * epoch event is answered, also the last one (whose answer changes nothing), and end of input means
 * stop. Bad input ends the process with a message on stderr and exit code 2.
 */

export const trialRequestSchema = z
  .strictObject({
    trial: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a trial id is letters, digits, ".", "_" and "-" (it names its checkpoint folder)')
      .max(120),
    seed: z.number().int().min(0),
    params: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
    from_epoch: z.number().int().min(0),
    to_epoch: z.number().int().positive(),
    resume_from: z.string().min(1).nullable(),
  })
  .superRefine((r, ctx) => {
    if (r.to_epoch <= r.from_epoch)
      ctx.addIssue({ code: 'custom', path: ['to_epoch'], message: `must be greater than from_epoch (${r.from_epoch}), got ${r.to_epoch}` });
    if (r.from_epoch > 0 && r.resume_from === null) {
      ctx.addIssue({
        code: 'custom',
        path: ['resume_from'],
        message: `from_epoch is ${r.from_epoch}: name the checkpoint of that epoch (an epoch event's "checkpoint")`,
      });
    }
    if (r.from_epoch === 0 && r.resume_from !== null)
      ctx.addIssue({ code: 'custom', path: ['from_epoch'], message: 'resume_from is set: from_epoch must be its epoch, not 0' });
    for (const owned of ['seed', 'epochs', 'pause_at_epoch']) {
      if (owned in r.params) {
        const instead = owned === 'seed' ? 'the request\'s "seed"' : '"to_epoch"';
        ctx.addIssue({ code: 'custom', path: ['params', owned], message: `not allowed here: use ${instead}` });
      }
    }
  });

export type TrialRequest = z.infer<typeof trialRequestSchema>;

export interface EpochEvent {
  event: 'epoch';
  epoch: number;
  metrics: Record<string, number>;
  checkpoint: string;
}

export interface DoneEvent {
  event: 'done';
  epoch: number;
  checkpoint: string | null;
  stopped_early: boolean;
}

/** A zod problem as `where.path.to.field: message`. */
export function describeIssues(issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>, where: string): string {
  return issues.map((i) => `${where}${i.path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`)).join('')}: ${i.message}`).join('; ');
}

export interface SegmentResult {
  epochs: EpochEvent[];
  done: DoneEvent;
}

/**
 * Runs one segment through a trainer command that speaks the protocol: `decide` sees each epoch
 * and says whether to go on. Rejects with the trainer's stderr tail when it fails.
 */
export function runSegment(command: readonly string[], request: TrialRequest, decide: (e: EpochEvent) => boolean): Promise<SegmentResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, command.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' } });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    const epochs: EpochEvent[] = [];
    let done: DoneEvent | undefined;
    let failure: Error | undefined;
    const fail = (message: string) => {
      failure ??= new Error(`trial ${request.trial}: ${message}`);
      child.kill();
    };
    child.stdin.on('error', () => undefined); // a trainer that exits early: reported through its exit code
    child.stdin.write(`${JSON.stringify(request)}\n`);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      let event: EpochEvent | DoneEvent;
      try {
        event = JSON.parse(line) as EpochEvent | DoneEvent;
      } catch {
        return fail(`the trainer printed a line that is not JSON: ${line.slice(0, 200)}`);
      }
      if (event.event === 'epoch') {
        epochs.push(event);
        child.stdin.write(`${JSON.stringify({ continue: decide(event) })}\n`);
      } else if (event.event === 'done') {
        done = event;
        child.stdin.end();
      } else fail(`expected an event "epoch" or "done", got ${line.slice(0, 200)}`);
    });
    child.on('error', (err) => fail(`cannot start ${command.join(' ')}: ${err.message}`));
    child.on('close', (code) => {
      if (failure) return reject(failure);
      if (code !== 0 || !done)
        return reject(new Error(`trial ${request.trial}: the trainer exited with code ${code}${done ? '' : ' before "done"'}\n${stderr.trim()}`));
      resolve({ epochs, done });
    });
  });
}
