// The MAIL FROM / RCPT TO command line as benno-smtp reads it, in place of
// smtp-server's own parser (see smtp-server-patches.ts, which installs it).
// smtp-server rewrites and filters addresses: it turns xn-- domains into
// Unicode, normalises IPv6 literals, drops source routes, splits the command
// on white space (so a quoted local part such as "a b"@example.org breaks)
// and refuses local parts Postfix accepts ("a..b"@). An archive keeps the
// envelope as the MTA sent it: the command is read as latin1, one character
// per byte, so that Buffer.from(address, 'latin1') gives back the bytes sent.
// Which characters an address may hold is the receiver's decision, so that
// its refusal can name the character.

export interface AddressCommand {
  address: string;
  args: Record<string, string | true> | false;
  /** A parameter given twice; smtp-server's MAIL and RCPT handlers answer 501 for it (RFC 3461 4). */
  duplicate?: string;
}

/** Space or tab: SMTP's white space. (\s would also take latin1's no-break space, byte 0xA0.) */
const BLANK = /[ \t]/;
const BLANKS = /[ \t]+/g;

/**
 * Parses "MAIL FROM:<addr> PARAMS" / "RCPT TO:<addr> PARAMS"; false when
 * malformed. The command is a string of one character per byte (latin1).
 */
export function parseAddressCommand(name: string, command: string): AddressCommand | false {
  const verb = name.trim().toUpperCase();
  const colon = command.indexOf(':');
  if (colon < 0 || command.slice(0, colon).replace(BLANKS, ' ').trim().toUpperCase() !== verb) return false;
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
  const rest = command.slice(i + 1);
  if (rest !== '' && !BLANK.test(rest[0])) return false;
  let args: Record<string, string | true> | false = false;
  let duplicate: string | undefined;
  for (const part of rest.split(BLANKS).filter(Boolean)) {
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).toUpperCase();
    if (!key) continue;
    const value = eq < 0 ? true : part.slice(eq + 1).replace(/\+([0-9A-F]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    // Parameters end up in replies and DSNs; control characters there split lines.
    if (typeof value === 'string' && /[\x00-\x1f\x7f]/.test(value)) return false;
    if (args && key in args) duplicate = key;
    args = { ...(args || {}), [key]: value };
  }
  return duplicate ? { address, args, duplicate } : { address, args };
}
