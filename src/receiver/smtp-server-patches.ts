// Behaviours of smtp-server that an archive receiver must not have, replaced
// on its connection class. This is the one module that touches smtp-server's
// internals. Nothing is patched on import: benno-smtp calls patchSmtpServer()
// at start-up, before it builds its Receiver, and the Receiver refuses to
// run on an smtp-server that is not patched.
//
// smtp-server is pinned to an exact version for this. UPSTREAM_SHA256 holds
// the sha256 of the source of every upstream method the patches replace,
// wrap or depend on, as that version has it, and
// test/unit/smtp-server-patches.test.ts fails, naming the method, when the
// installed smtp-server has another: a fix upstream makes in a method we
// replace would otherwise be dropped without anyone noticing.
//
// 1. Addresses. smtp-server's MAIL/RCPT parser rewrites and filters
//    addresses and reads the command line as UTF-8 (a byte that is not UTF-8
//    became U+FFFD); it is replaced by parseAddressCommand (smtp-address.ts),
//    which keeps the bytes sent and returns what handler_MAIL and
//    handler_RCPT act on: the parameters, and one given twice.
// 2. The greeting. smtp-server waits 100 ms before its 220 to catch "early
//    talkers" (a spam-fighting trick). benno-smtp serves known exporters
//    only, and the pause limited it to 10 connections a second per client.
//    A client must end its first command line within
//    options.firstCommandTimeout of connecting, or it gets 421: a client
//    that connects and says nothing holds one of max_clients for seconds,
//    not for socketTimeout.
// 3. AUTH before STARTTLS. Where a certificate is configured and AUTH in
//    clear text is refused (538), smtp-server still lists AUTH in its EHLO
//    reply, and a client that believes it sends its password in clear
//    before learning it should not have. EHLO now lists AUTH only where
//    AUTH would be taken. _isSupported('AUTH') itself must stay true: it is
//    also how smtp-server decides that MAIL needs AUTH first (530).
// 4. Enhanced status codes. A reply from an application callback gets the
//    code smtp-server picks for its reply code (452 → 4.2.2, "insufficient
//    storage"), which is wrong for "too many recipients" (4.5.3). A reply
//    text that starts with its own enhanced status code of the same class
//    keeps it.
//
// Closing is no longer patched: since 3.20 smtp-server stops parsing a
// connection it closes (421, QUIT), so no pipelined command runs after it,
// and destroys its socket when the client has not hung up within 5 s.
// test/unit/smtp-server-patches.test.ts holds it to both.

import type { SMTPServerSession } from 'smtp-server';
import { AddressCommand, parseAddressCommand } from './smtp-address';

/** smtp-server options the patches read (smtp-server keeps the options object it is given). */
export interface PatchOptions {
  /** Milliseconds a client may take before its first command line. */
  firstCommandTimeout?: number;
  /** Called when a client's first command did not come in time. */
  onFirstCommandTimeout?: (session: SMTPServerSession) => void;
}

interface ServerOptions extends PatchOptions {
  maxClients?: number;
  hideSTARTTLS?: boolean;
  allowInsecureAuth?: boolean;
}

interface Socket {
  destroyed: boolean;
  destroy(): void;
  on(event: 'data', fn: (chunk: Buffer) => void): void;
  once(event: 'close', fn: () => void): void;
  off(event: 'data', fn: (chunk: Buffer) => void): void;
}

type Handler = (command: Buffer, callback: () => void) => void;

interface Connection {
  _closing: boolean;
  _parseAddressCommand(name: string, command: unknown): AddressCommand | false;
  handler_MAIL: Handler;
  handler_RCPT: Handler;
  handler_AUTH: Handler;
  close(): void;
  _setListeners(done: () => void): void;
  _isSupported(command: string): boolean;
  _useEnhancedStatusCodes(): boolean;
  handler_EHLO: Handler;
  connectionReady(): void;
  send(code: number, data?: string | string[], context?: string | false): void;
  init(): void;
  name: string;
  secure: boolean;
  session: SMTPServerSession;
  _socket: Socket;
  _server: { options: ServerOptions; connections: Set<unknown> };
  /** Upstream's source of each hooked method, kept when the patches replace them. */
  __bennoOriginals?: Record<HookedMethod, string>;
}

/**
 * The SMTPConnection methods the patches replace, wrap or call, and those
 * whose behaviour they mirror or feed; patchSmtpServer() refuses to run if
 * one is missing.
 */
export const HOOKED_METHODS = [
  '_parseAddressCommand', // 1: replaced
  'handler_MAIL', // 1: calls the parser, acts on what it returns (args, duplicate)
  'handler_RCPT', // 1: the same; the Receiver also empties its recipient list
  'init', // 2: replaced by a copy without the pause
  '_setListeners', // 2: called by the copy
  'connectionReady', // 2: called by the copy
  'close', // 2: sets _closing, which the first-command deadline reads
  'handler_EHLO', // 3: wrapped
  '_isSupported', // 3: shadowed for one EHLO reply
  'handler_AUTH', // 3: its 538 condition is mirrored in the EHLO wrapper
  'send', // 4: wrapped; 2: called
  '_useEnhancedStatusCodes', // 4: called
] as const;

export type HookedMethod = (typeof HOOKED_METHODS)[number];

/** The smtp-server release the patches were checked against. */
export const PINNED_SMTP_SERVER = '3.21.6';

/**
 * sha256 of Function.prototype.toString() of each hooked method of
 * PINNED_SMTP_SERVER, before patching. On an upgrade, read each method that
 * the test names in the new release, adjust the patch, then record the new
 * hash here.
 */
export const UPSTREAM_SHA256: Record<HookedMethod, string> = {
  _parseAddressCommand: '6c12334d014173e8806c0e05fd22532a3b674bb43b3206a2b734ea89dbfd0281',
  handler_MAIL: 'a40618dd2e16f0fa01c49110b1dce1ae724fae587d2eced96afd62d957b392f5',
  handler_RCPT: 'ef2acd7214eaa466005564206adf3bb4a158ae3f5ac39af9a1e5aa5d88bc7435',
  init: '1265a7d7ca8f5510b4ce94ce4c52bdc127a13b6ef912ec7f9dec69be7a662918',
  _setListeners: 'cf07ab6f47db09acf796970e44196427a39c0d8f357d207ec797ca08f10027f5',
  connectionReady: '62c0ab75022331de177ec1ff0fdbfff7eb9c5c292af74567cb0a015d0e0b029f',
  close: '8b9a23413167403aa8cf3b933072aba83407cd3f7cea2f7605275fe0ced5821f',
  handler_EHLO: '42394b3ad94f3debdc14fc08f5e017635b00c85799bb3a8fa68b4a8aa5b0642a',
  _isSupported: 'dbbb9a8918cf72015fb0b4edb8553715450f9190bfc7b4b9da668b274074fe19',
  handler_AUTH: '84c3fee26e93196f0f209775341fd6f6d22838b2c264b2a2dd8cd81fdc40e259',
  send: 'c33568c0111a58b2d16786c2ffebbeef6f040c6914742bbcae1c3b3b2507efcb',
  _useEnhancedStatusCodes: 'a779b37aa914745dfdd730c443d5df1c8d969cbae2523cd9f3e151adc3245081',
};

/**
 * How long smtp-server gives a client to hang up after the last reply of a
 * connection it closes (its HALF_CLOSE_TIMEOUT; socketTimeout where shorter).
 */
export const CLOSING_GRACE_MS = 5_000;

/** "4.5.3 Too many recipients" → ["4.5.3", "Too many recipients"]. */
const OWN_ENHANCED_CODE = /^([245])\.(\d{1,3})\.(\d{1,3}) ([^]*)$/;

/** The prototype of the connection class the installed smtp-server uses (its CommonJS build, as ours is). */
function connectionPrototype(): Connection {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return (require('smtp-server/lib/smtp-connection') as { SMTPConnection: { prototype: Connection } }).SMTPConnection.prototype;
}

/** Whether patchSmtpServer() has run in this process. */
export function smtpServerPatched(): boolean {
  return connectionPrototype().__bennoOriginals !== undefined;
}

/** The source of each hooked method as upstream has it: kept from before patching, or read now. */
export function upstreamSources(): Record<HookedMethod, string> {
  const proto = connectionPrototype();
  return proto.__bennoOriginals ?? sourcesOf(proto);
}

function sourcesOf(proto: Connection): Record<HookedMethod, string> {
  const sources = {} as Record<HookedMethod, string>;
  for (const method of HOOKED_METHODS) {
    if (typeof proto[method] !== 'function') {
      throw new Error(`smtp-server no longer has SMTPConnection#${method}; see src/receiver/smtp-server-patches.ts`);
    }
    sources[method] = Function.prototype.toString.call(proto[method]);
  }
  return sources;
}

/** Applies the patches to smtp-server's connection class, once per process; later calls do nothing. */
export function patchSmtpServer(): void {
  const proto = connectionPrototype();
  if (proto.__bennoOriginals) return;
  const originals = sourcesOf(proto);

  // 1.
  proto._parseAddressCommand = function (name: string, command: unknown) {
    // smtp-server builds the command with Buffer.from(line, 'binary'): these are the bytes sent.
    return parseAddressCommand(name, Buffer.isBuffer(command) ? command.toString('latin1') : String(command));
  };

  // 2. As smtp-server's own init(), without the 100 ms pause, with the first-command timeout.
  proto.init = function (this: Connection) {
    this._setListeners(() => {
      const { maxClients, firstCommandTimeout } = this._server.options;
      if (maxClients && this._server.connections.size > maxClients) {
        return this.send(421, `${this.name} Too many connected clients, try again in a moment`, false);
      }
      if (firstCommandTimeout) watchFirstCommand(this, firstCommandTimeout);
      this.connectionReady();
    });
  };

  // 3.
  const originalEhlo = proto.handler_EHLO;
  const isSupported = proto._isSupported;
  proto.handler_EHLO = function (this: Connection, command: Buffer, callback: () => void) {
    const options = this._server.options;
    // The condition under which smtp-server's handler_AUTH answers 538.
    const authRefused = !this.secure && this._isSupported('STARTTLS') && !options.hideSTARTTLS && !options.allowInsecureAuth;
    if (!authRefused) return originalEhlo.call(this, command, callback);
    // For this one reply, on this connection only, AUTH is not a feature; the
    // own property goes before anything else (the callback) can run.
    this._isSupported = (name: string) => String(name).trim().toUpperCase() !== 'AUTH' && isSupported.call(this, name);
    const restore = () => delete (this as Partial<Connection>)._isSupported;
    try {
      originalEhlo.call(this, command, () => {
        restore();
        callback();
      });
    } finally {
      restore();
    }
  };

  // 4.
  const originalSend = proto.send;
  proto.send = function (this: Connection, code: number, data?: string | string[], context?: string | false) {
    const own = typeof data === 'string' ? OWN_ENHANCED_CODE.exec(data) : null;
    if (own && own[1] === String(code)[0]) {
      return originalSend.call(this, code, this._useEnhancedStatusCodes() ? data : own[4], false);
    }
    return originalSend.call(this, code, data, context);
  };

  proto.__bennoOriginals = originals;
}

/**
 * Gives the client ms from the greeting to its first line end; then it gets
 * 421 and the connection closes. A deadline, not an idle timeout: a client
 * that trickles a byte now and then without ending a line is cut off too.
 */
function watchFirstCommand(connection: Connection, ms: number): void {
  const socket = connection._socket;
  const onData = (chunk: Buffer) => {
    if (!chunk.includes(0x0a)) return;
    socket.off('data', onData);
    clearTimeout(deadline);
  };
  const deadline = setTimeout(() => {
    socket.off('data', onData);
    // A connection refused at its start (421, 554) is already closing: that was not this limit.
    if (connection._closing || socket.destroyed) return;
    connection._server.options.onFirstCommandTimeout?.(connection.session);
    connection.send(421, 'Timeout waiting for the first command - closing connection');
  }, ms);
  deadline.unref();
  socket.on('data', onData);
  socket.once('close', () => clearTimeout(deadline));
}
