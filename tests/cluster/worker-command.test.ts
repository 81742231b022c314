import { runCli } from '../helpers/processes';

describe('sweeps worker', () => {
  it('documents every setting as a flag and as the environment variable that sets it', async () => {
    const help = await runCli(['worker', '--help'], {});
    expect(help.code).toBe(0);
    const lineOf = (flag: string) => help.stdout.split('\n').find((l) => l.trimStart().startsWith(`${flag} `)) ?? '';
    expect(lineOf('--slots')).toContain('SWEEPS_TRAIN_SLOTS');
    expect(lineOf('--identity')).toContain('SWEEPS_WORKER_IDENTITY');
    expect(lineOf('--queue')).toContain('SWEEPS_TASK_QUEUE');
    expect(lineOf('--train-queue')).toContain('SWEEPS_TRAIN_QUEUE');
    expect(lineOf('--role')).toContain('io');
  });

  it.each([
    [['--role', 'gpu'], '--role gpu: expected io or train'],
    [['--slots', '0'], '--slots 0: expected a positive integer'],
    [['--queue', ''], '--queue: expected a name'],
    [['--train-queue', ' '], '--train-queue: expected a name'],
  ])('rejects %j before connecting to anything (exit 2)', async (args, message) => {
    // An address nobody listens on: reaching it would fail differently (and slowly).
    const run = await runCli(['worker', ...args], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
    expect({ code: run.code, message: run.stderr.includes(message) }).toEqual({ code: 2, message: true });
  });
});
