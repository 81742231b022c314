import pino, { type Logger } from 'pino';

/**
 * Structured logs for machines (JSON lines, to a file or stderr); people read the CLI's own
 * output. `SWEEPS_LOG_LEVEL` sets the level (default `info`). Errors are logged as `{ err }`:
 * pino's error serializer keeps the type, message, stack and cause chain, not only the message.
 */
export function createLogger(options: { file?: string; name?: string } = {}): Logger {
  const level = process.env.SWEEPS_LOG_LEVEL ?? 'info';
  const destination = options.file
    ? pino.destination({ dest: options.file, mkdir: true, sync: true }) // sync: an early exit must not lose (or crash on) unflushed lines
    : pino.destination(2);
  return pino({ level, name: options.name ?? 'sweeps', base: { pid: process.pid }, serializers: { err: pino.stdSerializers.err } }, destination);
}
