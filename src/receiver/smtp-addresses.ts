// MAIL FROM / RCPT TO addresses exactly as the client sent them.
//
// smtp-server rewrites and filters addresses on the way in: it turns
// xn-- domains into Unicode, normalises IPv6 literals, splits the command on
// white space (so a quoted local part such as "a b"@example.org breaks) and
// refuses local parts Postfix accepts ("a..b"@). An archive must keep the
// envelope as the MTA saw it, so benno-smtp replaces that one parsing step
// with the parser below. smtp-server is pinned to an exact version for this;
// test/unit/smtp-addresses.test.ts fails if the hook point moves.

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

interface ConnectionPrototype {
  _parseAddressCommand(name: string, command: unknown): AddressCommand | false;
  __bennoVerbatimAddresses?: boolean;
}

/** Makes smtp-server hand addresses over exactly as received. Idempotent. */
export function keepAddressesVerbatim(): void {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { SMTPConnection } = require('smtp-server/lib/smtp-connection') as { SMTPConnection: { prototype: ConnectionPrototype } };
  const proto = SMTPConnection.prototype;
  if (typeof proto._parseAddressCommand !== 'function') {
    throw new Error('smtp-server no longer has SMTPConnection#_parseAddressCommand; see src/receiver/smtp-addresses.ts');
  }
  if (proto.__bennoVerbatimAddresses) return;
  proto._parseAddressCommand = function (name: string, command: unknown) {
    return parseAddressCommand(name, String(command));
  };
  proto.__bennoVerbatimAddresses = true;
}
