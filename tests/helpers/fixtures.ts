import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';

/** The project root (tests run from dist/tests/…). */
export const repoRoot = resolve(__dirname, '..', '..', '..');

/** Where the real SmartWatch Gestures archive is, outside the repository (never committed). */
export const gesturesArchivePath = resolve(process.env.SWEEPS_TEST_ARCHIVE ?? join(repoRoot, '..', 'shared', 'data', 'gestures-dataset.zip'));

/** The real archive's path, or a clear failure when it is not there. */
export function gesturesArchive(): string {
  if (!existsSync(gesturesArchivePath)) throw new Error(`the gestures archive is missing at ${gesturesArchivePath}: set SWEEPS_TEST_ARCHIVE`);
  return gesturesArchivePath;
}

export const GESTURES_MD5 = '7966323b95154f314e831c312e5cc33b';

/** Serves one file over loopback HTTP and counts the requests. */
export async function serveFile(path: string): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let count = 0;
  const server: Server = createServer((req, res) => {
    count++;
    res.writeHead(200, { 'content-type': 'application/zip', 'content-length': statSync(path).size });
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/gestures-dataset.zip`,
    requests: () => count,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}
