// sd_notify(3) for Type=notify units. Node has no unix datagram sockets, so
// the message goes through systemd's own systemd-notify(1), which names our
// PID as the main PID (the unit sets NotifyAccess=all so systemd accepts it
// from the helper). Outside systemd ($NOTIFY_SOCKET unset) this does nothing.

import { spawn } from 'node:child_process';

export function sdNotify(...assignments: string[]): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const child = spawn('systemd-notify', [`--pid=${process.pid}`, ...assignments], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`systemd-notify ${assignments.join(' ')} failed: ${stderr.trim() || `exit ${code}`}`));
    });
  });
}
