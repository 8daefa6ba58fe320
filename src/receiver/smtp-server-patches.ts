// Behaviours of smtp-server that an archive receiver must not have, replaced
// on its connection class. This is the one module that touches smtp-server's
// internals; smtp-server is pinned to an exact version for it, and
// test/unit/smtp-server-patches.test.ts fails if the hook points move.
//
// 1. Addresses. smtp-server's MAIL/RCPT parser rewrites and filters
//    addresses and reads the command line as UTF-8 (a byte that is not UTF-8
//    became U+FFFD); it is replaced by parseAddressCommand (smtp-address.ts),
//    which keeps the bytes sent.
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

interface Connection {
  _closing: boolean;
  _parseAddressCommand(name: string, command: unknown): AddressCommand | false;
  _setListeners(done: () => void): void;
  _isSupported(command: string): boolean;
  _useEnhancedStatusCodes(): boolean;
  handler_EHLO(command: Buffer, callback: () => void): void;
  connectionReady(): void;
  send(code: number, data?: string | string[], context?: string | false): void;
  init(): void;
  name: string;
  secure: boolean;
  session: SMTPServerSession;
  _socket: Socket;
  _server: { options: ServerOptions; connections: Set<unknown> };
  __bennoPatched?: boolean;
}

/** The methods the patches replace or call; patchSmtpServer() refuses to run if one is missing. */
export const HOOKED_METHODS = [
  '_parseAddressCommand',
  '_setListeners',
  '_isSupported',
  '_useEnhancedStatusCodes',
  'handler_EHLO',
  'connectionReady',
  'send',
  'init',
] as const;

/**
 * How long smtp-server gives a client to hang up after the last reply of a
 * connection it closes (its HALF_CLOSE_TIMEOUT; socketTimeout where shorter).
 */
export const CLOSING_GRACE_MS = 5_000;

/** "4.5.3 Too many recipients" → ["4.5.3", "Too many recipients"]. */
const OWN_ENHANCED_CODE = /^([245])\.(\d{1,3})\.(\d{1,3}) ([^]*)$/;

/** Applies the patches to smtp-server's connection class. Idempotent. */
export function patchSmtpServer(): void {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { SMTPConnection } = require('smtp-server/lib/smtp-connection') as { SMTPConnection: { prototype: Connection } };
  const proto = SMTPConnection.prototype;
  for (const method of HOOKED_METHODS) {
    if (typeof proto[method] !== 'function') {
      throw new Error(`smtp-server no longer has SMTPConnection#${method}; see src/receiver/smtp-server-patches.ts`);
    }
  }
  if (proto.__bennoPatched) return;

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

  proto.__bennoPatched = true;
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
