// Two behaviours of smtp-server that an archive receiver must not have,
// replaced on its connection class. smtp-server is pinned to an exact
// version for this; test/unit/smtp-server-patches.test.ts fails if the hook
// points move.
//
// 1. Addresses. smtp-server rewrites and filters MAIL FROM / RCPT TO
//    addresses: it turns xn-- domains into Unicode, normalises IPv6
//    literals, splits the command on white space (so a quoted local part
//    such as "a b"@example.org breaks) and refuses local parts Postfix
//    accepts ("a..b"@). An archive keeps the envelope as the MTA saw it.
// 2. The greeting. smtp-server waits 100 ms before its 220 to catch "early
//    talkers" (a spam-fighting trick). benno-smtp serves known exporters
//    only, and the pause limited it to 10 connections a second per client.

export interface AddressCommand {
  address: string;
  args: Record<string, string | true> | false;
}

/** Parses "MAIL FROM:<addr> PARAMS" / "RCPT TO:<addr> PARAMS"; false when malformed. */
export function parseAddressCommand(name: string, command: string): AddressCommand | false {
  const verb = name.trim().toUpperCase();
  const colon = command.indexOf(':');
  if (colon < 0 || command.slice(0, colon).trim().toUpperCase().replace(/\s+/g, ' ') !== verb) return false;
  let i = colon + 1;
  while (command[i] === ' ') i++;
  if (command[i] !== '<') return false;
  const start = ++i;
  let quoted = false;
  for (; i < command.length; i++) {
    const c = command[i];
    if (quoted && c === '\\') i++;
    else if (c === '"') quoted = !quoted;
    else if (c === '>' && !quoted) break;
  }
  if (i >= command.length) return false;
  const address = command.slice(start, i);
  // Control characters have no place in an address and would break the spool file's lines.
  if (/[\x00-\x1f\x7f]/.test(address)) return false;
  const rest = command.slice(i + 1);
  if (rest !== '' && !/^\s/.test(rest)) return false;
  let args: Record<string, string | true> | false = false;
  for (const part of rest.trim().split(/\s+/).filter(Boolean)) {
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).toUpperCase();
    if (!key) continue;
    const value = eq < 0 ? true : part.slice(eq + 1).replace(/\+([0-9A-F]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    if (typeof value === 'string' && /[\x00-\x1f\x7f]/.test(value)) return false;
    args = { ...(args || {}), [key]: value };
  }
  return { address, args };
}

interface Connection {
  _parseAddressCommand(name: string, command: unknown): AddressCommand | false;
  _setListeners(done: () => void): void;
  connectionReady(): void;
  send(code: number, text: string, context: false): void;
  init(): void;
  name: string;
  _server: { options: { maxClients?: number }; connections: Set<unknown> };
  __bennoPatched?: boolean;
}

/** Applies both patches to smtp-server's connection class. Idempotent. */
export function patchSmtpServer(): void {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { SMTPConnection } = require('smtp-server/lib/smtp-connection') as { SMTPConnection: { prototype: Connection } };
  const proto = SMTPConnection.prototype;
  for (const method of ['_parseAddressCommand', '_setListeners', 'connectionReady', 'init'] as const) {
    if (typeof proto[method] !== 'function') {
      throw new Error(`smtp-server no longer has SMTPConnection#${method}; see src/receiver/smtp-server-patches.ts`);
    }
  }
  if (proto.__bennoPatched) return;
  proto._parseAddressCommand = function (name: string, command: unknown) {
    return parseAddressCommand(name, String(command));
  };
  // As smtp-server's own init(), without the 100 ms pause before the greeting.
  proto.init = function (this: Connection) {
    this._setListeners(() => {
      const { maxClients } = this._server.options;
      if (maxClients && this._server.connections.size > maxClients) {
        return this.send(421, `${this.name} Too many connected clients, try again in a moment`, false);
      }
      this.connectionReady();
    });
  };
  proto.__bennoPatched = true;
}
