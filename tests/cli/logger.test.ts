import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../client/logger';

test('an error logged as { err } keeps its type, message, stack and cause (pino error serializer)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sweeps-logger-'));
  try {
    const file = join(dir, 'worker.log');
    const cause = new Error('ENOSPC: no space left on device');
    createLogger({ file }).warn({ err: new TypeError('could not save the checkpoint', { cause }) }, 'checkpoint not saved');
    const line = JSON.parse(readFileSync(file, 'utf8').trim()) as { msg: string; err: { type: string; message: string; stack: string } };
    expect(line.msg).toBe('checkpoint not saved');
    expect(line.err.type).toBe('TypeError');
    expect(line.err.message).toContain('could not save the checkpoint');
    // The cause chain is kept: the serializer appends it to the message and the stack.
    expect(line.err.message).toContain('ENOSPC: no space left on device');
    expect(line.err.stack).toMatch(/TypeError: could not save the checkpoint\n\s+at /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
