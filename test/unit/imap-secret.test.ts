import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import {
  DecryptError,
  KeyError,
  MAX_KEY_BYTES,
  MAX_PASSWORD_BYTES,
  SecretError,
  decryptPassword,
  encryptPassword,
  generateKeyPair,
  keyPairMatches,
  loadPrivateKey,
  loadPublicKey,
  readPrivateKeyStream,
} from '../../src/imap/secret';
import { ROOT } from '../helpers/daemon';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imap-secret-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let serial = 0;
const fresh = (name: string) => path.join(dir, `${serial++}-${name}`);

function write(name: string, content: string | Buffer): string {
  const file = fresh(name);
  fs.writeFileSync(file, content, { mode: 0o600 });
  return file;
}

function pair(): { pub: string; sec: string; publicKey: crypto.KeyObject; privateKey: crypto.KeyObject } {
  const pub = fresh('benno-imap.pub');
  const sec = fresh('benno-imap.sec');
  generateKeyPair(pub, sec);
  return { pub, sec, publicKey: loadPublicKey(pub), privateKey: loadPrivateKey(sec) };
}

const keys = pair();
const account = { user: 'benno@lw-systems.net', host: 'imap.lw-systems.net' };
const PASSWORD = Buffer.from('Sommer2024!geheim');

/** The base64 body of a PEM file: what must never appear in a message. */
function pemBody(file: string): string {
  return fs.readFileSync(file, 'latin1').split('\n').filter((l) => l && !l.startsWith('-----')).join('');
}

function assertNoSecrets(e: Error, ...secrets: string[]) {
  for (const s of [PASSWORD.toString(), ...secrets]) {
    for (let i = 0; i + 16 <= s.length; i += 8) assert.ok(!e.message.includes(s.slice(i, i + 16)), `message holds secret bytes: ${e.message}`);
    if (s.length < 16) assert.ok(!e.message.includes(s), `message holds a secret: ${e.message}`);
  }
}

describe('password encryption', () => {
  it('round trips passwords of every length class, binary and UTF-8 ones included', () => {
    const passwords: Buffer[] = ['', 'x', 'a'.repeat(29), 'a'.repeat(30), 'a'.repeat(31), 'Grüße, 密码 🔑', '\0\r\n\xff'].map((s) => Buffer.from(s));
    passwords.push(crypto.randomBytes(MAX_PASSWORD_BYTES));
    for (const pw of passwords) {
      const blob = encryptPassword(keys.publicKey, account, pw);
      assert.deepEqual(decryptPassword(keys.privateKey, account, blob), pw);
    }
  });

  it('hides the exact length: blobs grow in steps of 32 bytes', () => {
    const size = (n: number) => encryptPassword(keys.publicKey, account, Buffer.alloc(n, 'p')).length;
    assert.equal(size(0), 1 + 8 + 32 + 12 + 32 + 16);
    assert.equal(size(30), size(0));
    assert.equal(size(31), size(0) + 32);
  });

  it('never gives the same blob twice (a fresh ephemeral key each time)', () => {
    const a = encryptPassword(keys.publicKey, account, PASSWORD);
    const b = encryptPassword(keys.publicKey, account, PASSWORD);
    assert.notDeepEqual(a.subarray(9, 41), b.subarray(9, 41));
    assert.notDeepEqual(a, b);
    assert.ok(!a.includes(PASSWORD));
  });

  it('refuses a password longer than it can store', () => {
    assert.throws(() => encryptPassword(keys.publicKey, account, Buffer.alloc(MAX_PASSWORD_BYTES + 1)), (e: Error) => e instanceof SecretError);
  });

  it("a blob copied to another account's row does not decrypt", () => {
    const blob = encryptPassword(keys.publicKey, account, PASSWORD);
    const others = [
      { user: 'info@lw-systems.net', host: account.host },
      { user: account.user, host: 'imap2.lw-systems.net' },
      { user: account.user, host: account.host.toUpperCase() },
      // The same bytes split differently between user and host.
      { user: `${account.user}i`, host: account.host.slice(1) },
    ];
    for (const other of others) {
      assert.throws(() => decryptPassword(keys.privateKey, other, blob), (e: Error) => {
        assert.ok(e instanceof DecryptError, String(e));
        assert.equal(e.message, `the stored password of ${other.user}@${other.host} does not decrypt: it is damaged or was stored for another account; store it again with benno-imapuser -p`);
        assertNoSecrets(e, pemBody(keys.sec));
        return true;
      });
    }
  });

  it('a blob made for another key pair says so', () => {
    const other = pair();
    const blob = encryptPassword(other.publicKey, account, PASSWORD);
    assert.throws(() => decryptPassword(keys.privateKey, account, blob), {
      name: 'DecryptError',
      message: `the stored password of ${account.user}@${account.host} was encrypted for another key pair than this private key's; store it again with benno-imapuser -p`,
    });
  });

  it('a change to any byte of a blob is found, and named by its region', () => {
    const blob = encryptPassword(keys.publicKey, account, PASSWORD);
    const region = (i: number) => (i === 0 ? 'version' : i < 9 ? 'key id' : i < 41 ? 'ephemeral key' : i < 53 ? 'nonce' : i < blob.length - 16 ? 'ciphertext' : 'tag');
    const seen = new Set<string>();
    for (let i = 0; i < blob.length; i++) {
      const bad = Buffer.from(blob);
      bad[i] ^= 0x01;
      assert.throws(() => decryptPassword(keys.privateKey, account, bad), (e: Error) => {
        assert.ok(e instanceof DecryptError, `byte ${i}: ${e}`);
        const expected = { version: /has format 0, this program reads format 1/, 'key id': /another key pair/ }[region(i) as 'version'] ?? /does not decrypt: it is damaged or was stored for another account/;
        assert.match(e.message, expected, `byte ${i} (${region(i)})`);
        assertNoSecrets(e, pemBody(keys.sec));
        return true;
      });
      seen.add(region(i));
    }
    assert.equal(seen.size, 6);
  });

  it('a short, long or empty blob is damaged, not a crash', () => {
    const blob = encryptPassword(keys.publicKey, account, PASSWORD);
    const who = `the stored password of ${account.user}@${account.host}`;
    for (const [bad, message] of [
      [Buffer.alloc(0), `${who} is empty; store it again with benno-imapuser -p`],
      [blob.subarray(0, 60), `${who} is damaged (60 bytes); store it again with benno-imapuser -p`],
      [blob.subarray(0, blob.length - 1), `${who} is damaged (${blob.length - 1} bytes); store it again with benno-imapuser -p`],
      [Buffer.concat([blob, Buffer.alloc(32)]), `${who} does not decrypt: it is damaged or was stored for another account; store it again with benno-imapuser -p`],
    ] as const) {
      assert.throws(() => decryptPassword(keys.privateKey, account, bad), { name: 'DecryptError', message });
    }
  });

  it('an ephemeral key of low order (an attacker in the database) is only a DecryptError', () => {
    const blob = encryptPassword(keys.publicKey, account, PASSWORD);
    blob.fill(0, 9, 41);
    assert.throws(() => decryptPassword(keys.privateKey, account, blob), DecryptError);
  });

  it('user and host with control characters are escaped in the message', () => {
    const blob = encryptPassword(keys.publicKey, account, PASSWORD);
    assert.throws(() => decryptPassword(keys.privateKey, { user: 'a\nforged line', host: 'h' }, blob), (e: Error) => !e.message.includes('\n'));
  });

  it('keys of the wrong kind are refused by encrypt and decrypt', () => {
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
    assert.throws(() => encryptPassword(rsa.publicKey, account, PASSWORD), KeyError);
    assert.throws(() => encryptPassword(keys.privateKey, account, PASSWORD), KeyError);
    assert.throws(() => decryptPassword(keys.publicKey, account, Buffer.alloc(200)), KeyError);
  });
});

describe('key files', () => {
  const genkey = 'create a pair with benno-imapuser --genkey';
  const notX25519 = `benno-imap keys are X25519: ${genkey}`;
  const pem = (k: crypto.KeyObject) => k.export(k.type === 'public' ? { type: 'spki', format: 'pem' } : { type: 'pkcs8', format: 'pem' }) as string;

  const wrongKinds: [string, crypto.KeyPairKeyObjectResult, string][] = [
    ['RSA', crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }), 'an RSA key'],
    ['EC P-256', crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }), 'an EC key (prime256v1)'],
    ['Ed25519', crypto.generateKeyPairSync('ed25519'), 'an Ed25519 (signing) key'],
    ['X448', crypto.generateKeyPairSync('x448'), 'a key of type x448'],
  ];
  for (const [name, kp, what] of wrongKinds) {
    it(`a ${name} key is refused in one line, for the private and the public key`, () => {
      const sec = write(`${name}.sec`, pem(kp.privateKey));
      const pub = write(`${name}.pub`, pem(kp.publicKey));
      assert.throws(() => loadPrivateKey(sec), (e: Error) => {
        assert.ok(e instanceof KeyError);
        assert.equal(e.message, `${sec} is ${what}; ${notX25519}`);
        assertNoSecrets(e, pemBody(sec));
        return true;
      });
      assert.throws(() => loadPublicKey(pub), { name: 'KeyError', message: `${pub} is ${what}; ${notX25519}` });
    });
  }

  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  it("openssl's X25519 keys are benno-imap keys (PKCS#8 and SPKI PEM)", () => {
    const sec = write('openssl.sec', openssl('genpkey', '-algorithm', 'X25519'));
    const pub = write('openssl.pub', openssl('pkey', '-in', sec, '-pubout'));
    const blob = encryptPassword(loadPublicKey(pub), account, PASSWORD);
    assert.deepEqual(decryptPassword(loadPrivateKey(sec), account, blob), PASSWORD);
    assert.ok(keyPairMatches(loadPublicKey(pub), loadPrivateKey(sec)));
    assert.ok(!keyPairMatches(keys.publicKey, loadPrivateKey(sec)));
  });

  const opensslKeys: [string, () => Buffer, (file: string) => string][] = [
    ['openssl genrsa (PKCS#8)', () => openssl('genrsa', '2048'), (f) => `${f} is an RSA key; ${notX25519}`],
    ['openssl genrsa -traditional (RSA PRIVATE KEY)', () => openssl('genrsa', '-traditional', '2048'), (f) => `${f} is an RSA key; ${notX25519}`],
    ['openssl ecparam P-256 (EC PRIVATE KEY)', () => openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout'), (f) => `${f} is an EC key (prime256v1); ${notX25519}`],
    ['openssl ecparam with its parameters block', () => openssl('ecparam', '-name', 'prime256v1', '-genkey'), (f) => `${f} holds 2 PEM blocks; a benno-imap key file holds one key`],
    ['openssl genpkey ed25519', () => openssl('genpkey', '-algorithm', 'ed25519'), (f) => `${f} is an Ed25519 (signing) key; ${notX25519}`],
    [
      'a passphrase-protected X25519 key',
      () => openssl('genpkey', '-algorithm', 'X25519', '-aes256', '-pass', 'pass:secret'),
      (f) => `${f} is encrypted with a passphrase; benno-imap reads unencrypted keys, protected by the file's mode (decrypt it with openssl pkey)`,
    ],
    ['an X.509 certificate', () => openssl('req', '-x509', '-newkey', 'ed25519', '-nodes', '-keyout', '/dev/null', '-subj', '/CN=benno', '-days', '1'), (f) => `${f} is a certificate, not a key; benno-imap keys are X25519 PEM files: ${genkey}`],
  ];
  for (const [name, make, message] of opensslKeys) {
    it(`${name} is refused as the private key`, () => {
      const sec = write('openssl-key', make());
      assert.throws(() => loadPrivateKey(sec), { name: 'KeyError', message: message(sec) });
    });
  }

  it('a public key where the private one belongs, and the other way round', () => {
    assert.throws(() => loadPrivateKey(keys.pub), { name: 'KeyError', message: `${keys.pub} is a public key; benno-imapsync needs the private key (keyfile, benno-imap.sec)` });
    const rsaPub = write('rsa-public.pem', openssl('rsa', '-in', write('rsa.sec', openssl('genrsa', '2048')), '-RSAPublicKey_out'));
    assert.throws(() => loadPrivateKey(rsaPub), { message: `${rsaPub} is a public key; benno-imapsync needs the private key (keyfile, benno-imap.sec)` });
    assert.throws(() => loadPublicKey(keys.sec), (e: Error) => {
      assert.equal(e.message, `${keys.sec} is a private key; pubkey must name the public key (benno-imap.pub), and the private key belongs only where benno-imapsync runs`);
      assertNoSecrets(e, pemBody(keys.sec));
      return true;
    });
  });

  it('a damaged PEM is one line that names the file and no key bytes', () => {
    const good = fs.readFileSync(keys.sec, 'latin1');
    const lines = good.split('\n');
    const body = lines[1];
    const damaged = [
      [lines[0], lines[1].slice(0, 20), lines[2], ''].join('\n'), // truncated base64
      [lines[0], `${body.slice(0, 10)}!!!!${body.slice(14)}`, lines[2], ''].join('\n'), // not base64
      [lines[0], Buffer.from('not a der structure at all').toString('base64'), lines[2], ''].join('\n'),
      good.replace('-----END PRIVATE KEY-----', ''), // no end line
    ];
    for (const text of damaged) {
      const file = write('damaged.sec', text);
      assert.throws(() => loadPrivateKey(file), (e: Error) => {
        assert.ok(e instanceof KeyError, String(e));
        assert.match(e.message, new RegExp(`^${file} (is a damaged PEM key \\(PRIVATE KEY\\) that cannot be read; restore it from a backup or ${genkey}|holds no PEM key; .*)$`));
        assert.ok(!e.message.includes('\n'));
        assertNoSecrets(e, body);
        return true;
      });
    }
  });

  it('files that are no key: empty, text, the old format, an OpenSSH key, a directory, none, too large', () => {
    const cases: [string, string][] = [
      [write('empty.sec', ''), `is empty; ${genkey}`],
      [write('text.sec', 'hello\n'), `holds no PEM key; benno-imap keys are X25519 PEM files: ${genkey}`],
      [write('ssh.sec', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n'), `is an OpenSSH key; benno-imap keys are X25519 PEM files: ${genkey}`],
      [dir, 'is not a regular file'],
      [write('huge.sec', Buffer.alloc(MAX_KEY_BYTES + 1, 'A')), 'is larger than 64 KiB: no benno-imap key'],
    ];
    for (const [file, problem] of cases) assert.throws(() => loadPrivateKey(file), { name: 'KeyError', message: `${file} ${problem}` });
    const missing = path.join(dir, 'missing.sec');
    assert.throws(() => loadPrivateKey(missing), { name: 'KeyError', message: `cannot read the private key ${missing}: ENOENT; ${genkey}` });
    assert.throws(() => loadPublicKey(missing), { name: 'KeyError', message: `cannot read the public key ${missing}: ENOENT; ${genkey}` });
  });
});

describe('benno-imapuser --genkey: generateKeyPair', () => {
  const mode = (f: string) => fs.statSync(f).mode & 0o7777;

  it('writes a matching pair, public 0644, private 0600, whatever the umask', () => {
    for (const umask of [0o000, 0o077, 0o022]) {
      const old = process.umask(umask);
      try {
        const { pub, sec, publicKey, privateKey } = pair();
        assert.equal(mode(pub), 0o644, `umask ${umask.toString(8)}`);
        assert.equal(mode(sec), 0o600, `umask ${umask.toString(8)}`);
        assert.ok(keyPairMatches(publicKey, privateKey));
        assert.match(fs.readFileSync(pub, 'latin1'), /^-----BEGIN PUBLIC KEY-----\n/);
        assert.match(fs.readFileSync(sec, 'latin1'), /^-----BEGIN PRIVATE KEY-----\n/);
      } finally {
        process.umask(old);
      }
    }
  });

  it("with benno's group the private key is 0640 in that group", () => {
    const gid = process.getgid?.() === 0 ? 65534 : process.getgid!();
    const pub = fresh('g.pub');
    const sec = fresh('g.sec');
    generateKeyPair(pub, sec, { privateKeyGid: gid });
    assert.equal(mode(sec), 0o640);
    assert.equal(fs.statSync(sec).gid, gid);
    assert.equal(fs.statSync(sec).uid, process.getuid!());
    assert.equal(mode(pub), 0o644);
  });

  it('never overwrites a key and leaves no half pair', () => {
    const old = pair();
    const before = [fs.readFileSync(old.pub), fs.readFileSync(old.sec)];
    const newPub = fresh('new.pub');
    const newSec = fresh('new.sec');
    for (const [pub, sec, existing] of [
      [old.pub, newSec, old.pub],
      [newPub, old.sec, old.sec],
      [old.pub, old.sec, old.pub],
    ]) {
      assert.throws(() => generateKeyPair(pub, sec), {
        name: 'KeyError',
        message: `${existing} already exists; a key is never overwritten, as the passwords stored with the old pair could not be read any more. Move it away first if you really want a new pair`,
      });
      assert.ok(!fs.existsSync(newPub) && !fs.existsSync(newSec), 'nothing new is left behind');
    }
    assert.deepEqual([fs.readFileSync(old.pub), fs.readFileSync(old.sec)], before);
  });

  it('a symbolic link where a key would go is refused, not followed', () => {
    const target = fresh('target');
    const link = fresh('link.sec');
    fs.symlinkSync(target, link);
    const pub = fresh('l.pub');
    assert.throws(() => generateKeyPair(pub, link), /already exists/);
    assert.ok(!fs.existsSync(target) && !fs.existsSync(pub));
  });

  it('when the private key cannot be written, the public one is removed again', () => {
    const pub = fresh('alone.pub');
    const sec = path.join(dir, 'no-such-dir', 'benno-imap.sec');
    assert.throws(() => generateKeyPair(pub, sec), { name: 'KeyError', message: `cannot write the key pair (${sec}): ENOENT; nothing was written` });
    assert.ok(!fs.existsSync(pub));
  });

  it('refuses one path for both keys', () => {
    const p = fresh('both');
    assert.throws(() => generateKeyPair(p, `${path.dirname(p)}/./${path.basename(p)}`), { name: 'KeyError', message: `the public and the private key cannot both go to ${p}` });
    assert.ok(!fs.existsSync(p));
  });
});

describe('the private key from a stream (keyfile commented out)', () => {
  const secPem = () => fs.readFileSync(keys.sec);

  it('reads a key that arrives in small chunks', async () => {
    const pemBytes = secPem();
    const chunks = Array.from({ length: Math.ceil(pemBytes.length / 7) }, (_, i) => pemBytes.subarray(i * 7, i * 7 + 7));
    const key = await readPrivateKeyStream(Readable.from(chunks));
    assert.ok(keyPairMatches(keys.publicKey, key));
  });

  const refusals: [string, () => Readable, string][] = [
    ['empty', () => Readable.from([]), 'the key on stdin is empty; with keyfile commented out, benno-imapsync reads the private key from stdin (ssh vault cat benno-imap.sec | benno-imapsync -c ...)'],
    ['a terminal', () => Object.assign(Readable.from([]), { isTTY: true }), 'the key on stdin: stdin is a terminal; with keyfile commented out, pipe the private key in (ssh vault cat benno-imap.sec | benno-imapsync -c ...)'],
    ['an RSA key', () => Readable.from([crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' })]), 'the key on stdin is an RSA key; benno-imap keys are X25519: create a pair with benno-imapuser --genkey'],
    ['the public key', () => Readable.from([fs.readFileSync(keys.pub)]), 'the key on stdin is a public key; benno-imapsync needs the private key (keyfile, benno-imap.sec)'],
    ['failing', () => new Readable({ read() { this.destroy(Object.assign(new Error('boom'), { code: 'EIO' })); } }), 'the key on stdin cannot be read: EIO'],
  ];
  for (const [name, stream, message] of refusals) {
    it(`refuses a stream that is ${name}`, { timeout: 10_000 }, async () => {
      await assert.rejects(readPrivateKeyStream(stream()), { name: 'KeyError', message });
    });
  }

  it('stops reading a stream larger than a key', async () => {
    let sent = 0;
    // 400 MiB, should it be read to the end.
    const endless = Readable.from((function* () { for (; sent < 100_000; sent++) yield Buffer.alloc(4096, 'A'); })());
    await assert.rejects(readPrivateKeyStream(endless), { name: 'KeyError', message: 'the key on stdin is larger than 64 KiB: no benno-imap key' });
    assert.ok(sent <= MAX_KEY_BYTES / 4096 + 2, `${sent} chunks read`);
  });

  it('decrypts with a key piped into a process on stdin', () => {
    const blob = encryptPassword(keys.publicKey, account, PASSWORD);
    const module = JSON.stringify(path.join(ROOT, 'dist', 'src', 'imap', 'secret.js'));
    const script = `const s = require(${module}); s.readPrivateKeyStream(process.stdin).then((k) => process.stdout.write(s.decryptPassword(k, ${JSON.stringify(account)}, Buffer.from(process.argv[1], 'hex'))));`;
    const r = spawnSync(process.execPath, ['-e', script, blob.toString('hex')], { input: secPem() });
    assert.equal(r.stderr.toString(), '');
    assert.deepEqual(r.stdout, PASSWORD);
    const empty = spawnSync(process.execPath, ['-e', script, blob.toString('hex')], { stdio: ['ignore', 'pipe', 'pipe'] });
    assert.match(empty.stderr.toString(), /KeyError: the key on stdin is empty/);
  });
});
