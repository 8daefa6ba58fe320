// Fuzzing, run by `npm run test:faults` (and a short round in `npm test`):
// random and mutated milter packet streams against the benno-milter process,
// random SMTP input against benno-smtp. Each fuzz connection must end (no
// hang), the process must stay up with bounded memory, and a canary session
// on the side must keep archiving. An input that breaks any of that is saved
// under test/fixtures/fuzz/ and replayed on every later run.

import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as C from '../../src/milter/constants';
import { encodeHeader, encodeMacros, encodeOptneg, encodePacket, encodeStrings } from '../../src/milter/codec';
import { MilterClient, POSTFIX_OFFER } from '../../src/milter/client';
import { Program, ROOT } from '../helpers/daemon';

export const REGRESSIONS = path.join(ROOT, 'test', 'fixtures', 'fuzz');

/** Deterministic randomness, so a run can be repeated from its seed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    // xorshift32
    this.s ^= this.s << 13;
    this.s ^= this.s >>> 17;
    this.s ^= this.s << 5;
    return (this.s >>> 0) / 0x100000000;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  pick<T>(xs: T[]): T {
    return xs[this.int(xs.length)];
  }
}

/** A well-formed session as Postfix sends it, packet by packet. */
export function validSession(rng: Rng): Buffer[] {
  const rcpts = 1 + rng.int(4);
  const packets = [
    encodeOptneg(POSTFIX_OFFER.version, POSTFIX_OFFER.actions, POSTFIX_OFFER.protocol),
    encodeMacros(C.SMFIC_CONNECT, { j: 'mx.example.org', '{daemon_name}': 'smtpd' }),
    encodeMacros(C.SMFIC_MAIL, { '{daemon_name}': 'smtpd' }),
    encodeStrings(C.SMFIC_MAIL, [`<fuzz${rng.int(1000)}@example.com>`, 'SIZE=100']),
  ];
  for (let i = 0; i < rcpts; i++) packets.push(encodeStrings(C.SMFIC_RCPT, [`<r${i}@example.org>`]));
  for (let i = 0; i < 1 + rng.int(6); i++) packets.push(encodeHeader(`X-H${i}`, ` ${rng.bytes(rng.int(40)).toString('latin1').replace(/\0/g, '')}`));
  packets.push(encodePacket(C.SMFIC_EOH), encodePacket(C.SMFIC_BODY, rng.bytes(rng.int(3000))), encodeMacros(C.SMFIC_BODYEOB, { i: 'FUZZ' }));
  packets.push(encodePacket(C.SMFIC_BODYEOB), encodePacket(C.SMFIC_ABORT), encodePacket(C.SMFIC_QUIT));
  return packets;
}

const COMMANDS = [C.SMFIC_ABORT, C.SMFIC_BODY, C.SMFIC_CONNECT, C.SMFIC_MACRO, C.SMFIC_BODYEOB, C.SMFIC_HELO, C.SMFIC_QUIT_NC, C.SMFIC_HEADER, C.SMFIC_MAIL, C.SMFIC_EOH, C.SMFIC_OPTNEG, C.SMFIC_QUIT, C.SMFIC_RCPT, C.SMFIC_DATA, C.SMFIC_UNKNOWN];

/** One fuzz input: pure noise, or a valid session damaged in one of several ways. */
export function fuzzInput(rng: Rng): Buffer {
  const kind = rng.int(8);
  if (kind === 0) return rng.bytes(rng.int(5000));
  const packets = validSession(rng);
  switch (kind) {
    case 1: {
      // flip bits anywhere
      const b = Buffer.concat(packets);
      for (let i = 0, n = 1 + rng.int(20); i < n; i++) b[rng.int(b.length)] ^= 1 << rng.int(8);
      return b;
    }
    case 2: {
      // a bad length field on one packet
      const i = rng.int(packets.length);
      const p = Buffer.from(packets[i]);
      p.writeUInt32BE(rng.pick([0, 1, 2, 0xffffffff, 0x7fffffff, p.length + rng.int(100), rng.int(0x200000)]), 0);
      packets[i] = p;
      return Buffer.concat(packets);
    }
    case 3: {
      // the wrong command byte
      const i = rng.int(packets.length);
      const p = Buffer.from(packets[i]);
      p[4] = rng.next() < 0.5 ? rng.pick(COMMANDS) : rng.int(256);
      packets[i] = p;
      return Buffer.concat(packets);
    }
    case 4: {
      // packets shuffled, dropped or repeated
      const out: Buffer[] = [];
      for (let i = 0; i < packets.length * 2; i++) if (rng.next() < 0.6) out.push(rng.pick(packets));
      return Buffer.concat(out);
    }
    case 5:
      // cut off anywhere
      return Buffer.concat(packets).subarray(0, rng.int(Buffer.concat(packets).length));
    case 6: {
      // strings without terminators, empty payloads
      const i = rng.int(packets.length);
      const p = packets[i];
      const body = p.subarray(5, Math.max(5, p.length - 1 - rng.int(3)));
      packets[i] = encodePacket(p[4], body);
      return Buffer.concat(packets);
    }
    default: {
      // random payloads behind valid framing
      const out = [packets[0]];
      for (let i = 0; i < 1 + rng.int(30); i++) out.push(encodePacket(rng.pick(COMMANDS), rng.bytes(rng.int(200))));
      return Buffer.concat(out);
    }
  }
}

/**
 * Sends one input and waits for the connection to end. Replies are read and
 * ignored. Resolves "closed", or "hung" when it neither ends nor answers
 * within the limit after the input was sent.
 */
export function runInput(target: { path: string } | { host: string; port: number }, input: Buffer, limitMs: number): Promise<'closed' | 'hung' | 'refused'> {
  return new Promise((resolve) => {
    const s = net.connect(target as net.NetConnectOpts);
    let done = false;
    const finish = (r: 'closed' | 'hung' | 'refused') => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    let timer: NodeJS.Timeout;
    s.on('data', () => undefined);
    s.once('connect', () => {
      // Feed in random pieces, as the network would.
      s.end(input, () => {
        timer = setTimeout(() => finish('hung'), limitMs);
      });
    });
    s.once('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'refused' : 'closed'));
    s.once('close', () => finish('closed'));
  });
}

export function saveRegression(input: Buffer, why: string): string {
  fs.mkdirSync(REGRESSIONS, { recursive: true });
  const name = `milter-${createHash('sha256').update(input).digest('hex').slice(0, 16)}.bin`;
  fs.writeFileSync(path.join(REGRESSIONS, name), input);
  fs.writeFileSync(path.join(REGRESSIONS, `${name}.txt`), `${why}\n`);
  return name;
}

export function regressionInputs(): { name: string; input: Buffer }[] {
  if (!fs.existsSync(REGRESSIONS)) return [];
  return fs
    .readdirSync(REGRESSIONS)
    .filter((n) => n.endsWith('.bin'))
    .map((name) => ({ name, input: fs.readFileSync(path.join(REGRESSIONS, name)) }));
}

export interface FuzzResult {
  cases: number;
  failures: { name: string; why: string }[];
  rssStart: number;
  rssEnd: number;
  canaryMessages: number;
}

/**
 * Fuzzes a running benno-milter for a while. A canary client archives a
 * valid message between batches: other sessions must stay unaffected.
 */
export async function fuzzMilter(milter: Program, target: { path: string }, options: { seconds: number; seed: number; limitMs?: number }): Promise<FuzzResult> {
  const rng = new Rng(options.seed);
  const limitMs = options.limitMs ?? 5000;
  const result: FuzzResult = { cases: 0, failures: [], rssStart: milter.memory().rss, rssEnd: 0, canaryMessages: 0 };
  const canary = await MilterClient.open(target);
  const deadline = Date.now() + options.seconds * 1000;
  const inputs = [...regressionInputs().map((r) => r.input)];
  while (Date.now() < deadline || inputs.length > 0) {
    const batch = inputs.length > 0 ? inputs.splice(0, 8) : Array.from({ length: 8 }, () => fuzzInput(rng));
    const outcomes = await Promise.all(batch.map((input) => runInput(target, input, limitMs)));
    result.cases += batch.length;
    outcomes.forEach((o, i) => {
      if (o === 'hung') result.failures.push({ name: saveRegression(batch[i], 'connection neither answered nor closed'), why: 'hung' });
      if (o === 'refused') result.failures.push({ name: saveRegression(batch[i], 'milter stopped accepting connections'), why: 'refused' });
    });
    if (milter.proc.exitCode !== null || milter.proc.signalCode !== null) {
      result.failures.push({ name: saveRegression(Buffer.concat(batch), `milter exited: ${milter.log().slice(-2000)}`), why: 'milter exited' });
      break;
    }
    const reply = await canary.sendMessage({
      sender: '<canary@example.com>',
      recipients: ['<canary@example.org>'],
      headers: [['Subject', ` canary ${result.canaryMessages}`]],
      body: Buffer.from(`canary body ${randomBytes(8).toString('hex')}\r\n`),
    });
    await canary.abort();
    if (reply.type !== 'accept') result.failures.push({ name: 'canary', why: `canary got ${JSON.stringify(reply)}` });
    result.canaryMessages++;
  }
  await canary.quit();
  result.rssEnd = milter.memory().rss;
  return result;
}
