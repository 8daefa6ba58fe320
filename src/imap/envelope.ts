// The lines every imported message starts with, whatever the protocol it
// was fetched by (IMAP: benno-imapsync, benno-imapimport; POP3: benno-pop3):
// the spool format's envelope for imported mail (importedEnvelope), then the
// gateway line when the mailbox has a gateway name.

import { EnvelopeNames, gatewayLine, importedEnvelope } from '../spool/format';

/** "a@example.org, b@example.org" (benno-imapuser -e) as the recipient addresses. */
export function addressList(emails: string): Buffer[] {
  return emails
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '')
    .map((a) => Buffer.from(a, 'utf8'));
}

export class ImportEnvelope {
  private readonly gateway: Buffer | null;

  /** Throws nothing; check problem() before the first message. */
  constructor(
    private readonly names: EnvelopeNames,
    private readonly addresses: Buffer[],
    gateway: string | null,
  ) {
    this.gateway = gateway ? gatewayLine(gateway) : null;
  }

  /** Why no message of this mailbox could be written (no address, or one that cannot be written), or null. */
  problem(): string | null {
    if (this.addresses.length === 0) return 'the account has no address (benno-imapuser -e)';
    const probe = importedEnvelope(this.names, null, this.addresses);
    return 'kind' in probe ? `its addresses cannot be written: ${probe.text}` : null;
  }

  /**
   * The lines for a message with these Return-Path field(s) (or its header
   * section; null: none known). Only the Return-Path can be at fault once
   * problem() said null: then the message is archived without a sender
   * line rather than not at all, and warn() is told why.
   */
  lines(returnPathField: Buffer | null, warn: (why: string) => void): Buffer[] {
    let env = importedEnvelope(this.names, returnPathField, this.addresses);
    if ('kind' in env) {
      warn(`Return-Path not usable (${env.text}); archived without a sender line`);
      env = importedEnvelope(this.names, null, this.addresses) as { block: Buffer };
    }
    return this.gateway ? [env.block, this.gateway] : [env.block];
  }
}
