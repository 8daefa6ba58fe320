// An SMTP client for tests that must send exactly the bytes they choose (a
// quoted local part with "<", a raw 8-bit byte) where a real client library
// would refuse or rewrite them. One command at a time; DATA is sent as given,
// dot-stuffing and the final "." included.

import * as net from 'node:net';

export interface Dialogue {
  /** Every reply, in order, the greeting first (multi-line replies joined with \n). */
  replies: string[];
  /** The queue id from "250 ... queued as X", if the server said so. */
  queueId?: string;
}

/** Sends each command after the reply to the previous one; resolves when the server has closed. */
export function smtpDialogue(port: number, commands: Buffer[], host = '127.0.0.1'): Promise<Dialogue> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const replies: string[] = [];
    let buffered = '';
    let current: string[] = [];
    let next = 0;
    socket.on('data', (d: Buffer) => {
      buffered += d.toString('latin1');
      let eol: number;
      while ((eol = buffered.indexOf('\r\n')) >= 0) {
        const line = buffered.slice(0, eol);
        buffered = buffered.slice(eol + 2);
        current.push(line);
        if (line[3] === '-') continue;
        replies.push(current.join('\n'));
        current = [];
        if (next < commands.length) socket.write(commands[next++]);
        else socket.end();
      }
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const queued = replies.map((r) => /queued as ([0-9A-Za-z]+)/.exec(r)).find(Boolean);
      resolve({ replies, queueId: queued?.[1] });
    });
  });
}

const line = (s: string | Buffer) => Buffer.concat([typeof s === 'string' ? Buffer.from(s, 'latin1') : s, Buffer.from('\r\n')]);

/** One message: EHLO, MAIL FROM:<sender>, RCPT TO:<each>, DATA with the given (already dot-stuffed) content, QUIT. */
export function submitRaw(port: number, sender: Buffer, recipients: Buffer[], data: Buffer, mailParams = ''): Promise<Dialogue> {
  const angle = (cmd: string, addr: Buffer, params = '') => line(Buffer.concat([Buffer.from(`${cmd}:<`), addr, Buffer.from(`>${params}`)]));
  return smtpDialogue(port, [
    line('EHLO test.invalid'),
    angle('MAIL FROM', sender, mailParams),
    ...recipients.map((r) => angle('RCPT TO', r)),
    line('DATA'),
    Buffer.concat([data, Buffer.from('.\r\n')]),
    line('QUIT'),
  ]);
}
