// The IMAP passwords in the accounts database, encrypted with a public key so
// that whoever writes them (benno-imapuser, the web login) cannot read them
// back; only benno-imapsync, holding the private key, can.
//
// Scheme: X25519 with a fresh ephemeral key per password, HKDF-SHA256,
// AES-256-GCM (node:crypto only, Node 18). A stored password ("blob") is
//
//   offset  size  field
//   0       1     version, 1
//   1       8     key id: the first 8 bytes of SHA-256 of the recipient's
//                 public key (SPKI DER), to tell "another key pair" apart
//                 from "damaged"
//   9       32    the ephemeral X25519 public key
//   41      12    the GCM nonce
//   53      n     ciphertext of: password length (2 bytes, big-endian),
//                 the password, zero bytes up to a multiple of 32 bytes, so
//                 that the database shows no password's exact length
//   53+n    16    the GCM tag
//
// AES key = HKDF-SHA256(shared secret, salt = ephemeral public || recipient
// public, info = "benno-imap password v1"). The associated data is bytes
// 0-52 followed by the account's user and host, each as a 4-byte length and
// its UTF-8 bytes: a blob copied into another account's row does not decrypt.
//
// Key files are PEM: the public key SPKI ("PUBLIC KEY"), the private key
// PKCS#8 ("PRIVATE KEY"), as `openssl genpkey -algorithm X25519` writes too.
// Nothing here puts a password or a key's bytes into a message or a log.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { printable } from '../ops/text';

export const VERSION = 1;
const KEY_ID_BYTES = 8;
const PUBLIC_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + KEY_ID_BYTES + PUBLIC_BYTES + NONCE_BYTES;
const PAD_TO = 32;
const INFO = Buffer.from('benno-imap password v1');
/** DER of an X25519 SubjectPublicKeyInfo up to the 32 key bytes (RFC 8410). */
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

/** Longest password that can be stored; IMAP servers take far less. */
export const MAX_PASSWORD_BYTES = 4096;
/** A key file or key stream larger than this is no benno-imap key. */
export const MAX_KEY_BYTES = 64 * 1024;

export const GENKEY_HINT = 'create a pair with benno-imapuser --genkey';

/** A problem with passwords or keys; its message never holds a password or key bytes. */
export class SecretError extends Error {
  override name = 'SecretError';
}

/** A key file or key stream that cannot be used, or a key pair that cannot be written. */
export class KeyError extends SecretError {
  override name = 'KeyError';
}

/** A stored password that does not decrypt with this key for this account. */
export class DecryptError extends SecretError {
  override name = 'DecryptError';
}

/** Whose password a blob is: the account's user and host, as the database stores them. */
export interface Account {
  user: string;
  host: string;
}

function keyId(publicKey: crypto.KeyObject): Buffer {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(der).digest().subarray(0, KEY_ID_BYTES);
}

function rawPublic(publicKey: crypto.KeyObject): Buffer {
  return publicKey.export({ type: 'spki', format: 'der' }).subarray(X25519_SPKI_PREFIX.length);
}

function aesKey(shared: Buffer, ephemeralPublic: Buffer, recipientPublic: Buffer): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', shared, Buffer.concat([ephemeralPublic, recipientPublic]), INFO, 32));
}

function associatedData(header: Buffer, account: Account): Buffer {
  const parts = [header];
  for (const s of [account.user, account.host]) {
    const bytes = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    parts.push(len, bytes);
  }
  return Buffer.concat(parts);
}

function requireX25519(key: crypto.KeyObject, kind: 'public' | 'private'): void {
  if (key.type !== kind || key.asymmetricKeyType !== 'x25519') {
    throw new KeyError(`not an X25519 ${kind} key; ${GENKEY_HINT}`);
  }
}

/** Encrypts password for account with the public key; the result goes into the database as bytes. */
export function encryptPassword(publicKey: crypto.KeyObject, account: Account, password: Buffer): Buffer {
  requireX25519(publicKey, 'public');
  if (password.length > MAX_PASSWORD_BYTES) throw new SecretError(`a password of more than ${MAX_PASSWORD_BYTES} bytes cannot be stored`);
  const ephemeral = crypto.generateKeyPairSync('x25519');
  const ephemeralPublic = rawPublic(ephemeral.publicKey);
  const key = aesKey(crypto.diffieHellman({ privateKey: ephemeral.privateKey, publicKey }), ephemeralPublic, rawPublic(publicKey));
  const header = Buffer.concat([Buffer.from([VERSION]), keyId(publicKey), ephemeralPublic, crypto.randomBytes(NONCE_BYTES)]);
  const plain = Buffer.alloc(Math.ceil((2 + password.length) / PAD_TO) * PAD_TO);
  plain.writeUInt16BE(password.length);
  password.copy(plain, 2);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, header.subarray(HEADER_BYTES - NONCE_BYTES));
  cipher.setAAD(associatedData(header, account));
  const blob = Buffer.concat([header, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  plain.fill(0);
  key.fill(0);
  return blob;
}

/** The password in blob; a DecryptError when the key, the account or the bytes are not the ones it was made with. */
export function decryptPassword(privateKey: crypto.KeyObject, account: Account, blob: Buffer): Buffer {
  requireX25519(privateKey, 'private');
  const who = `the stored password of ${printable(account.user)}@${printable(account.host)}`;
  const store = 'store it again with benno-imapuser -p';
  if (blob.length < 1) throw new DecryptError(`${who} is empty; ${store}`);
  if (blob[0] !== VERSION) throw new DecryptError(`${who} has format ${blob[0]}, this program reads format ${VERSION}; ${store}`);
  if (blob.length < HEADER_BYTES + PAD_TO + TAG_BYTES || (blob.length - HEADER_BYTES - TAG_BYTES) % PAD_TO !== 0) {
    throw new DecryptError(`${who} is damaged (${blob.length} bytes); ${store}`);
  }
  const publicKey = crypto.createPublicKey(privateKey);
  if (!blob.subarray(1, 1 + KEY_ID_BYTES).equals(keyId(publicKey))) {
    throw new DecryptError(`${who} was encrypted for another key pair than this private key's; ${store}`);
  }
  const header = blob.subarray(0, HEADER_BYTES);
  const ephemeralPublic = header.subarray(1 + KEY_ID_BYTES, 1 + KEY_ID_BYTES + PUBLIC_BYTES);
  let plain: Buffer;
  try {
    const ephemeral = crypto.createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, ephemeralPublic]), format: 'der', type: 'spki' });
    const key = aesKey(crypto.diffieHellman({ privateKey, publicKey: ephemeral }), ephemeralPublic, rawPublic(publicKey));
    const decipher = crypto.createDecipheriv('aes-256-gcm', key, header.subarray(HEADER_BYTES - NONCE_BYTES));
    key.fill(0);
    decipher.setAAD(associatedData(header, account));
    decipher.setAuthTag(blob.subarray(blob.length - TAG_BYTES));
    plain = Buffer.concat([decipher.update(blob.subarray(HEADER_BYTES, blob.length - TAG_BYTES)), decipher.final()]);
  } catch {
    // OpenSSL's reasons say nothing an administrator can act on, and must not be echoed anyway.
    throw new DecryptError(`${who} does not decrypt: it is damaged or was stored for another account; ${store}`);
  }
  const length = plain.readUInt16BE(0);
  if (length > plain.length - 2) {
    plain.fill(0);
    throw new DecryptError(`${who} is damaged (bad length); ${store}`);
  }
  const password = Buffer.from(plain.subarray(2, 2 + length));
  plain.fill(0);
  return password;
}

// --- keys ---------------------------------------------------------------

/** What kind of key this is when it is no X25519 key, or null. */
function keyKindProblem(key: crypto.KeyObject): string | null {
  const type = key.asymmetricKeyType;
  if (type === 'x25519') return null;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const name =
    type === 'rsa' || type === 'rsa-pss' ? 'an RSA key'
    : type === 'ec' ? `an EC key${curve ? ` (${curve})` : ''}`
    : type === 'ed25519' ? 'an Ed25519 (signing) key'
    : `a key of type ${type ?? 'unknown'}`;
  return `is ${name}; benno-imap keys are X25519: ${GENKEY_HINT}`;
}

function parseKey(pem: Buffer, label: string, want: 'public' | 'private'): crypto.KeyObject {
  if (pem.length === 0) throw new KeyError(`${label} is empty; ${GENKEY_HINT}`);
  if (pem.length > MAX_KEY_BYTES) throw new KeyError(`${label} is larger than ${MAX_KEY_BYTES / 1024} KiB: no benno-imap key`);
  const text = pem.toString('latin1');
  const blocks = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]);
  if (blocks.length === 0) {
    // Keys of the old Python benno-imap are no PEM files; their passwords must be stored again.
    throw new KeyError(`${label} holds no PEM key; benno-imap keys are X25519 PEM files: ${GENKEY_HINT}`);
  }
  if (blocks.length > 1) throw new KeyError(`${label} holds ${blocks.length} PEM blocks; a benno-imap key file holds one key`);
  const block = blocks[0];
  if (block === 'ENCRYPTED PRIVATE KEY') {
    throw new KeyError(`${label} is encrypted with a passphrase; benno-imap reads unencrypted keys, protected by the file's mode (decrypt it with openssl pkey)`);
  }
  if (block === 'OPENSSH PRIVATE KEY') throw new KeyError(`${label} is an OpenSSH key; benno-imap keys are X25519 PEM files: ${GENKEY_HINT}`);
  if (block === 'CERTIFICATE') throw new KeyError(`${label} is a certificate, not a key; benno-imap keys are X25519 PEM files: ${GENKEY_HINT}`);
  const isPublic = / PUBLIC KEY$|^PUBLIC KEY$/.test(block);
  if (want === 'private' && isPublic) {
    throw new KeyError(`${label} is a public key; benno-imapsync needs the private key (keyfile, benno-imap.sec)`);
  }
  let key: crypto.KeyObject;
  try {
    key = want === 'private' ? crypto.createPrivateKey({ key: pem, format: 'pem' }) : crypto.createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw new KeyError(`${label} is a damaged PEM key (${block}) that cannot be read; restore it from a backup or ${GENKEY_HINT}`);
  }
  const kind = keyKindProblem(key);
  if (kind) throw new KeyError(`${label} ${kind}`);
  if (want === 'public' && !isPublic) {
    // createPublicKey takes a private key too; the public key file must not hold one.
    throw new KeyError(`${label} is a private key; pubkey must name the public key (benno-imap.pub), and the private key belongs only where benno-imapsync runs`);
  }
  return key;
}

function readKeyFile(file: string, want: 'public' | 'private'): crypto.KeyObject {
  let pem: Buffer;
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new KeyError(`${file} is not a regular file`);
      if (st.size > MAX_KEY_BYTES) throw new KeyError(`${file} is larger than ${MAX_KEY_BYTES / 1024} KiB: no benno-imap key`);
      pem = fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    if (err instanceof KeyError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new KeyError(`cannot read the ${want} key ${file}: ${code}${code === 'ENOENT' ? `; ${GENKEY_HINT}` : ''}`);
  }
  try {
    return parseKey(pem, file, want);
  } finally {
    pem.fill(0);
  }
}

export function loadPublicKey(file: string): crypto.KeyObject {
  return readKeyFile(file, 'public');
}

export function loadPrivateKey(file: string): crypto.KeyObject {
  return readKeyFile(file, 'private');
}

export const STDIN_LABEL = 'the key on stdin';

/**
 * The private key piped in (`ssh vault cat benno-imap.sec | benno-imapsync`),
 * when keyfile is commented out. Reads at most MAX_KEY_BYTES, so that a
 * mistaken pipe cannot fill memory.
 */
export async function readPrivateKeyStream(stream: NodeJS.ReadableStream & { isTTY?: boolean }, label = STDIN_LABEL): Promise<crypto.KeyObject> {
  if (stream.isTTY) {
    throw new KeyError(`${label}: stdin is a terminal; with keyfile commented out, pipe the private key in (ssh vault cat benno-imap.sec | benno-imapsync -c ...)`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      size += buf.length;
      chunks.push(buf);
      if (size > MAX_KEY_BYTES) break;
    }
  } catch (err) {
    throw new KeyError(`${label} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const pem = Buffer.concat(chunks);
  for (const c of chunks) c.fill(0);
  if (size === 0) {
    throw new KeyError(`${label} is empty; with keyfile commented out, benno-imapsync reads the private key from stdin (ssh vault cat benno-imap.sec | benno-imapsync -c ...)`);
  }
  try {
    return parseKey(pem, label, 'private');
  } finally {
    pem.fill(0);
  }
}

/** Whether privateKey is the private half of publicKey (a check for a pair set up by hand). */
export function keyPairMatches(publicKey: crypto.KeyObject, privateKey: crypto.KeyObject): boolean {
  return crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).equals(publicKey.export({ type: 'spki', format: 'der' }));
}

export const PUBLIC_KEY_MODE = 0o644;
/** Without a group for benno-imapsync: readable by the owner only. */
export const PRIVATE_KEY_MODE = 0o600;
/** With a group (benno, which runs benno-imapsync from cron): the owner (root) writes, the group reads. */
export const PRIVATE_KEY_GROUP_MODE = 0o640;

export interface GenerateOptions {
  /**
   * Group that may read the private key (mode 0640): benno's, as
   * benno-imapsync runs as benno while root owns the file, so the job can
   * read but not replace it. Absent: mode 0600, the caller's own.
   */
  privateKeyGid?: number;
}

/**
 * Writes a new pair: the public key (SPKI PEM, 0644) to pubPath, the private
 * key (PKCS#8 PEM, 0600 or 0640 with a group) to secPath. Never overwrites
 * (a new pair makes every stored password unreadable) and leaves no half
 * pair: a file it created is removed when anything fails.
 */
export function generateKeyPair(pubPath: string, secPath: string, options: GenerateOptions = {}): void {
  if (path.resolve(pubPath) === path.resolve(secPath)) throw new KeyError(`the public and the private key cannot both go to ${pubPath}`);
  const { publicKey, privateKey } = crypto.generateKeyPairSync('x25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const created: string[] = [];
  const secret = Buffer.from(privateKey);
  try {
    // Both are opened before either is written, so that an existing one stops everything.
    const files = [
      { file: pubPath, mode: PUBLIC_KEY_MODE, data: Buffer.from(publicKey), gid: undefined },
      { file: secPath, mode: options.privateKeyGid === undefined ? PRIVATE_KEY_MODE : PRIVATE_KEY_GROUP_MODE, data: secret, gid: options.privateKeyGid },
    ].map((f) => {
      // Created 0600 whatever the umask, so the private key is never readable by others, not even for a moment.
      const fd = openExclusive(f.file);
      created.push(f.file);
      return { ...f, fd };
    });
    try {
      for (const f of files) {
        if (f.gid !== undefined) fs.fchownSync(f.fd, -1, f.gid);
        fs.fchmodSync(f.fd, f.mode);
        fs.writeFileSync(f.fd, f.data);
        fs.fsyncSync(f.fd);
      }
    } finally {
      for (const f of files) fs.closeSync(f.fd);
    }
    for (const dir of new Set([path.dirname(path.resolve(pubPath)), path.dirname(path.resolve(secPath))])) syncDir(dir);
  } catch (err) {
    for (const file of created) fs.rmSync(file, { force: true });
    if (err instanceof KeyError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new KeyError(`cannot write the key pair (${e.path ?? pubPath}): ${e.code ?? e.message}; nothing was written`);
  } finally {
    secret.fill(0);
  }
}

function openExclusive(file: string): number {
  try {
    const { O_WRONLY, O_CREAT, O_EXCL } = fs.constants;
    return fs.openSync(file, O_WRONLY | O_CREAT | O_EXCL, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    throw new KeyError(
      `${file} already exists; a key is never overwritten, as the passwords stored with the old pair could not be read any more. Move it away first if you really want a new pair`,
    );
  }
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
