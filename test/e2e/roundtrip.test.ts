// The whole way with real programs: SMTP client → Postfix → benno-milter
// (spool) → benno-milter2smtp → benno-smtp (inbox). Every inbox file must be
// byte-identical to the spool file it came from, under the same name.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Program, runToEnd, startMilter } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';
import { Postfix, milterBehindPostfix, queuedAs, swaks } from '../helpers/postfix';
import { freePort } from '../helpers/net';
import { EXPORT_BIN, startReceiver } from '../helpers/smtp';
import { submit } from '../helpers/raw-smtp-client';
import { parseEnvelope } from '../../src/spool/format';
import { b } from '../helpers/bytes';
import { inSpool, spoolFiles, tempFiles } from '../helpers/spool';

/** A binary "attachment": every byte value except CR and LF, in CRLF-terminated lines. */
function binaryBody(): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < 4096; i++) {
    const v = (i * 37) % 256;
    if (v !== 10 && v !== 13) bytes.push(v);
    if (i % 76 === 75) bytes.push(13, 10);
  }
  bytes.push(13, 10);
  return Buffer.from(bytes);
}

describe('round trip: Postfix → milter spool → exporter → receiver inbox', () => {
  let work: string;
  let spool: string;
  let milter: Program;
  let postfix: Postfix;
  let smtpPort: number;
  let milterPort: number;

  before(async () => {
    work = tempDir();
    spool = path.join(work, 'spool');
    fs.mkdirSync(spool);
    ({ milter, postfix, milterPort } = await milterBehindPostfix(spool));
    smtpPort = postfix.port;
  });
  after(async () => {
    await postfix?.stop();
    await milter?.stop();
    removeTree(work);
  });

  /** Ships the spool to a fresh benno-smtp inbox and checks that every file arrived byte for byte under its name. */
  async function exportAndCompare(inbox: string, before: Map<string, Buffer>, receiverLines: string[] = []): Promise<void> {
    fs.mkdirSync(inbox);
    const port = await freePort();
    const rx = await startReceiver(work, [`listen = 127.0.0.1:${port}`, `inbox = ${inbox}`, ...receiverLines]);
    try {
      const r = await runToEnd(EXPORT_BIN, ['--host', '127.0.0.1', '--port', String(port), spool]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(inSpool(spool), [], 'every spool file was sent and removed');
      assert.deepEqual(spoolFiles(inbox), [...before.keys()].sort());
      for (const [name, content] of before) assert.ok(fs.readFileSync(path.join(inbox, name)).equals(content), `${name} is byte-identical`);
    } finally {
      await rx.program.stop();
    }
  }

  it('a corpus of awkward messages arrives in the inbox byte for byte', async () => {
    const queued: string[] = [];
    const viaSwaks = async (args: string[]) => {
      const r = await swaks(['--server', `127.0.0.1:${smtpPort}`, ...args]);
      assert.equal(r.code, 0, r.output);
      queued.push(queuedAs(r.output));
    };
    const data = (name: string, content: Buffer) => {
      const p = path.join(work, name);
      fs.writeFileSync(p, content);
      return p;
    };

    await viaSwaks(['--from', '<>', '--to', 'postmaster@example.org', '--header', 'Subject: null sender']);
    await viaSwaks(['--from', 'many@example.com', '--to', Array.from({ length: 50 }, (_, i) => `r${i}@example.org`).join(','), '--header', 'Subject: fifty recipients']);
    await viaSwaks([
      '--from', 'dots@example.com', '--to', 'r@example.org',
      '--data', data('dots.eml', b('Subject: dots\r\n\r\n.\r\n..two\r\n.one\r\n...\r\nend\r\n')),
    ]);
    await viaSwaks([
      '--from', 'long@example.com', '--to', 'r@example.org',
      '--data', data('long.eml', b(`Subject: long lines\r\nX-Long: ${'h'.repeat(1500)}\r\n\r\n${'a'.repeat(999)}\r\n${'b'.repeat(5000)}\r\nshort\r\n`)),
    ]);
    await viaSwaks([
      '--from', 'eight@example.com', '--to', 'r@example.org',
      '--data', data('8bit.eml', b('Subject: Gr\xc3\xbc\xc3\x9fe \xff\r\nContent-Type: text/plain; charset=latin1\r\n\r\n\xe4\xf6\xfc \xc3\xa4 \x80\x81\r\n')),
    ]);
    await viaSwaks([
      '--from', 'binary@example.com', '--to', 'r@example.org',
      '--data', data('binary.eml', Buffer.concat([b('Subject: binary attachment\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n'), binaryBody()])),
    ]);
    const utf8 = await submit(smtpPort, 'jürgen@bücher.example', ['müller@straße.example', 'ascii@example.org'], b('Subject: UTF-8 addresses\r\n\r\nhallo\r\n'), {
      mailParams: ' BODY=8BITMIME SMTPUTF8',
    });
    queued.push(queuedAs(utf8.final.text));
    // 30 MB, streamed
    const line = b(`${'z'.repeat(98)}\r\n`);
    const big = Readable.from((function* () {
      yield b('Subject: thirty megabytes\r\n\r\n');
      for (let i = 0; i < 30 * 1024 * 1024 / line.length; i++) yield line;
    })());
    queued.push(queuedAs((await submit(smtpPort, 'big@example.com', ['r@example.org'], big, { mailParams: ' BODY=8BITMIME', timeoutMs: 120_000 })).final.text));
    // no final newline: Postfix's sendmail, which adds the line end Postfix stores
    await postfix.sendmail(['-f', 'local@example.com', 'r@example.org'], b('Subject: no final newline\n\nlast line without newline'));
    await postfix.kickPickup();
    await milter.waitForLine(/archived from=<local@example.com> /, 90_000);

    for (const id of queued) await milter.waitForLine(new RegExp(`${id}: archived `), 60_000);
    const names = spoolFiles(spool);
    assert.equal(names.length, queued.length + 1);
    assert.deepEqual(tempFiles(spool), []);
    const before = new Map(names.map((n) => [n, fs.readFileSync(path.join(spool, n))]));
    // Names are content hashes: the receiver's file for the same bytes has the same name.
    for (const [name, content] of before) assert.equal(`${createHash('sha256').update(content).digest('hex')}.eml`, name);

    await exportAndCompare(path.join(work, 'inbox'), before);
  });

  it('hostile but valid envelopes Postfix accepts travel to the inbox unchanged, forged fields stay renamed (issue 9)', async () => {
    for (const n of spoolFiles(spool)) fs.unlinkSync(path.join(spool, n));
    const corpus: [Buffer, Buffer[]][] = [
      [b('"a> X-REAL-RCPTTO: <e"@x.org'), [b('"a b @ c"@example.org'), b('"<>"@example.org')]],
      [Buffer.from('jürgen@bücher.example', 'utf8'), [Buffer.from('müller@straße.example', 'utf8'), b('a@[IPv6:::1]')]],
      [b('s@example.com'), [Buffer.from('r\u2028x\u202e@example.org', 'utf8'), b('c\x01ontrol@example.org'), b('z'.repeat(880) + '@example.org')]],
      [b('"a\\"b"@example.com'), [b('"quoted\\ pair"@example.org')]],
    ];
    // On the wire, dot-stuffed: the body is the lines ".", ".." and "body".
    const data = b('X-REAL-RCPTTO: <ceo@victim.example>\r\nx-benno-gw: other\r\nSubject: hostile envelope\r\n\r\n..\r\n...\r\nbody\r\n');
    const queued: string[] = [];
    for (const [sender, rcpts] of corpus) {
      const d = await submit(smtpPort, sender, rcpts, data, { mailParams: ' SMTPUTF8', asIs: true });
      assert.ok(d.queueId, d.replies.map((r) => r.text).join('\n'));
      queued.push(d.queueId);
    }
    for (const id of queued) await milter.waitForLine(new RegExp(`${id}: archived `), 60_000);
    const names = spoolFiles(spool);
    assert.equal(names.length, corpus.length);
    const before = new Map(names.map((n) => [n, fs.readFileSync(path.join(spool, n))]));
    for (const content of before.values()) {
      const env = parseEnvelope(content)!;
      assert.ok(env, 'a valid envelope block');
      assert.ok(!env.recipients.some((r) => r.includes(b('victim'))), 'no forged recipient');
      assert.ok(content.includes(b('X-Untrusted-X-REAL-RCPTTO: <ceo@victim.example>\r\nX-Untrusted-x-benno-gw: other\r\n')), 'forged fields renamed');
      assert.ok(content.includes(b('\r\n\r\n.\r\n..\r\nbody\r\n')), 'the body as sent');
    }

    await exportAndCompare(path.join(work, 'inbox-hostile'), before);
  });

  it("multi-import: the milter's X-BENNO-GW line reaches the inbox as written, though benno-smtp has a gateway of its own (issue 10)", async () => {
    for (const n of spoolFiles(spool)) fs.unlinkSync(path.join(spool, n));
    await milter.stop();
    milter = await startMilter(['-p', `inet:${milterPort}@127.0.0.1`, '-o', spool, '--gateway', 'mx1.example']);
    const r = await swaks(['--server', `127.0.0.1:${smtpPort}`, '--from', 'gw@example.com', '--to', 'r@example.org', '--header', 'X-BENNO-GW: forged']);
    assert.equal(r.code, 0, r.output);
    await milter.waitForLine(new RegExp(`${queuedAs(r.output)}: archived .* renamed=1 `), 60_000);
    const names = spoolFiles(spool);
    const before = new Map(names.map((n) => [n, fs.readFileSync(path.join(spool, n))]));
    const [content] = before.values();
    const env = parseEnvelope(content)!;
    assert.equal(content.toString('latin1', env.messageOffset, env.messageOffset + 25), 'X-BENNO-GW: mx1.example\r\n');
    assert.ok(content.includes(b('\r\nX-Untrusted-X-BENNO-GW: forged\r\n')), "the sender's field renamed");
    await exportAndCompare(path.join(work, 'inbox-gateway'), before, ['gateway = archive-default']);
  });
});
