// Ports for the programs a test or benchmark starts: asked of the kernel,
// never written into the test, so that runs side by side (other worktrees,
// other suites) do not meet on one port.

import * as net from 'node:net';

/** A port nobody listens on right now at host (loopback by default). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
