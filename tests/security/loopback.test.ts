import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { useTestServer } from '../helpers/processes';

/**
 * The embedded server and its Web UI listen on 127.0.0.1 only: every listening socket of the
 * server process (frontend, UI, and whatever else it opens) is checked in /proc, not just the two
 * ports we asked for.
 */

/** Listening TCP sockets by inode: local address as `ip:port`, from /proc/net/tcp and tcp6. */
function listeningSockets(): Map<string, string> {
  const sockets = new Map<string, string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue; // 0A: LISTEN
      const [hexIp, hexPort] = f[1]!.split(':') as [string, string];
      sockets.set(f[9]!, `${decodeIp(hexIp)}:${parseInt(hexPort, 16)}`);
    }
  }
  return sockets;
}

/** /proc/net's little-endian hex address, as text (IPv4-mapped IPv6 shown as IPv4). */
function decodeIp(hex: string): string {
  const words = hex.match(/.{8}/g)!.map((w) => w.match(/../g)!.reverse().join(''));
  if (words.length === 1)
    return words[0]!
      .match(/../g)!
      .map((b) => parseInt(b, 16))
      .join('.');
  const v6 = words.join('');
  if (v6.startsWith('00000000000000000000ffff'))
    return v6
      .slice(24)
      .match(/../g)!
      .map((b) => parseInt(b, 16))
      .join('.');
  return v6 === '0'.repeat(31) + '1' ? '::1' : v6 === '0'.repeat(32) ? '::' : v6;
}

function socketInodesOf(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      return m ? [m[1]!] : [];
    } catch {
      return [];
    }
  });
}

describe('the embedded server', () => {
  const setup = useTestServer('sweeps-loopback-');
  const { home } = setup;

  it('listens on 127.0.0.1 only, the frontend and the Web UI among its sockets', () => {
    const pid = Number(readFileSync(join(home, 'temporal-server.pid'), 'utf8'));
    const listening = listeningSockets();
    const ours = socketInodesOf(pid).flatMap((inode) => (listening.has(inode) ? [listening.get(inode)!] : []));
    expect(ours).toEqual(expect.arrayContaining([`127.0.0.1:${setup.server.env.SWEEPS_SERVER_PORT}`, `127.0.0.1:${setup.server.env.SWEEPS_UI_PORT}`]));
    expect(ours.filter((address) => !address.startsWith('127.0.0.1:'))).toEqual([]);
  });
});
