// The milter application: each message the MTA shows us goes, with its
// envelope, into one spool file. The MTA gets its end-of-message answer only
// after the file is durable; any doubt is a temporary failure.

import * as C from '../milter/constants';
import { ACCEPT, MilterReply } from '../milter/codec';
import type { MessageHandler, MilterOptions, MilterSession } from '../milter/session';
import { CRLF, EnvelopeBuilder, EnvelopeNames, EnvelopeProblem, HeaderGuard, ReservedNames, bareAddress, gatewayLine, headerLine, reservedNames } from '../spool/format';
import type { SpoolFile, SpoolWriter } from '../spool/writer';
import type { Logger } from '../ops/log';

/**
 * Only end-of-message needs an answer. Every other event is either switched
 * off or declared no-reply, so a message costs the MTA one round trip (two
 * on loopback TCP, where DATA is answered too: see MilterOptions.answerDataOnLoopback).
 */
export const ARCHIVER_PROTOCOL =
  C.SMFIP_NOCONNECT |
  C.SMFIP_NOHELO |
  C.SMFIP_NOUNKNOWN |
  C.SMFIP_NODATA |
  C.SMFIP_NR_CONN |
  C.SMFIP_NR_HELO |
  C.SMFIP_NR_MAIL |
  C.SMFIP_NR_RCPT |
  C.SMFIP_NR_DATA |
  C.SMFIP_NR_UNKN |
  C.SMFIP_NR_HDR |
  C.SMFIP_NR_EOH |
  C.SMFIP_NR_BODY |
  C.SMFIP_HDR_LEADSPC;

/**
 * {daemon_name} at MAIL tells an Amavis re-injection apart; the queue id is
 * known by end-of-message. `i` is asked for at end-of-headers too, for
 * Sendmail: it takes a milter's end-of-message list only from a milter that
 * also sent an end-of-headers list (milter.c looks up the EOM macros under
 * the EOH flag) and otherwise sends its own, {msg_id} without the queue id.
 * Postfix sends `i` at both; the log line uses the latest.
 */
export const ARCHIVER_MACROS = new Map<number, string>([
  [C.SMFIM_ENVFROM, '{daemon_name}'],
  [C.SMFIM_EOH, 'i'],
  [C.SMFIM_EOM, 'i'],
]);

export const TEMPFAIL_TEXT = '451 4.3.0 Message archiving failed, try again later';
const TEMPFAIL_REPLY: MilterReply = { type: 'replycode', text: TEMPFAIL_TEXT };

export interface ArchiverConfig {
  writer: SpoolWriter;
  names: EnvelopeNames;
  /** {daemon_name} values whose messages are accepted without archiving. */
  skipDaemons: ReadonlySet<string>;
  /** Most header fields a message may have (a bound for hostile peers); 0: none. */
  maxHeaders: number;
  /** Largest message in bytes, envelope lines included; 0: no limit (Postfix has its own). */
  maxMessageBytes: number;
  /** Most recipients of one message. */
  maxRecipients: number;
  /** Multi-import: the X-BENNO-GW name written after the envelope lines of every file. */
  gateway?: string;
  log: Logger;
}

export function archiverMilterOptions(timeouts: Pick<MilterOptions, 'timeoutMs' | 'negotiationTimeoutMs'>): MilterOptions {
  // On loopback TCP, DATA is answered: without it Postfix's Nagle waits out our delayed ACK before the headers (issue 13).
  return { protocol: ARCHIVER_PROTOCOL, actions: 0, macroLists: ARCHIVER_MACROS, answerDataOnLoopback: true, ...timeouts };
}

export function archiverFactory(config: ArchiverConfig): (session: MilterSession) => MessageHandler {
  const reserved = reservedNames(config.names);
  const gateway = config.gateway === undefined ? null : gatewayLine(config.gateway);
  return (session) => new ArchiveHandler(session, config, reserved, gateway);
}

/** A limit the message passed: refused for good with this reply. */
interface Refusal {
  reason: string;
  /** Enhanced status code of the 554. */
  status: string;
}

const STATUS_OF: Record<EnvelopeProblem['kind'], string> = {
  'address-too-long': '5.1.3',
  'too-many-recipients': '5.5.3',
  'envelope-too-large': '5.3.4',
};

class ArchiveHandler implements MessageHandler {
  private envelope: EnvelopeBuilder;
  /** Renames fields of the message that carry our envelope names (see spool/format.ts). */
  private guard: HeaderGuard;
  private file: SpoolFile | null = null;
  private inBody = false;
  private skippedFor: string | null = null;
  /** Set once a limit is passed: end-of-message answers 554. */
  private refusal: Refusal | null = null;
  private headers = 0;

  constructor(
    private readonly session: MilterSession,
    private readonly config: ArchiverConfig,
    private readonly reserved: ReservedNames,
    private readonly gateway: Buffer | null,
  ) {
    this.envelope = new EnvelopeBuilder(config.names, config.maxRecipients);
    this.guard = new HeaderGuard(reserved, false);
  }

  mail(sender: Buffer): Promise<void> | undefined {
    const discarded = this.reset();
    this.envelopeProblem(this.envelope.setSender(bareAddress(sender)));
    const daemon = this.session.macro('daemon_name');
    if (daemon !== undefined && this.config.skipDaemons.has(daemon)) this.skippedFor = daemon;
    return discarded;
  }

  rcpt(recipient: Buffer): void {
    if (this.refusal === null) this.envelopeProblem(this.envelope.addRecipient(bareAddress(recipient)));
  }

  header(name: Buffer, value: Buffer): Promise<void> | undefined {
    if (this.config.maxHeaders > 0 && ++this.headers > this.config.maxHeaders) {
      return this.refuse({ reason: `more than ${this.config.maxHeaders} header fields`, status: '5.3.4' });
    }
    return this.write(this.guard.push(headerLine(name, value)));
  }

  eoh(): Promise<void> | undefined {
    return this.startBody();
  }

  body(chunk: Buffer): Promise<void> | undefined {
    const wait = this.startBody();
    const more = this.write(chunk);
    return wait && more ? Promise.all([wait, more]).then(() => undefined) : wait ?? more;
  }

  async eom(): Promise<MilterReply> {
    const queueId = this.session.macro('i') ?? 'NOQUEUE';
    if (this.skippedFor !== null) {
      this.config.log.info(
        `${queueId}: not archived: daemon_name=${this.skippedFor} is in --skip-daemon (already archived before the content filter)`,
      );
      await this.reset();
      return ACCEPT;
    }
    if (this.refusal !== null) {
      const text = `554 ${this.refusal.status} Message refused by the archive: ${this.refusal.reason}`;
      this.config.log.warn(
        `${queueId}: not archived, refused: ${this.refusal.reason} (answered "${text}"); see --max-headers, --max-message-size and --max-recipients`,
      );
      await this.reset();
      return { type: 'replycode', text };
    }
    this.startBody();
    const file = this.file!;
    const sender = this.envelope.writtenSender.toString('utf8');
    const count = this.envelope.recipientCount;
    const renamed = this.guard.renamed > 0 ? ` renamed=${this.guard.renamed} (fields carrying our envelope names)` : '';
    this.file = null;
    const started = process.hrtime.bigint();
    try {
      const done = await file.commit();
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      this.config.log.info(
        `${queueId}: archived from=<${sender}> rcpts=${count} size=${done.size} file=${done.name} ms=${ms.toFixed(1)}${renamed}`,
      );
      return ACCEPT;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      this.config.log.error(
        `${queueId}: archiving failed: ${e.code ? `${e.code}: ` : ''}${e.message}; answered "${TEMPFAIL_TEXT}", ` +
          `the MTA keeps the message and retries; check free space and write access to ${this.config.writer.dir}`,
      );
      return TEMPFAIL_REPLY;
    } finally {
      this.reset();
    }
  }

  abort(): Promise<void> | undefined {
    return this.reset();
  }

  /** Content into the spool file, within the size limit. */
  private write(bytes: Buffer): Promise<void> | undefined {
    const file = this.spool();
    if (!file) return undefined;
    if (this.config.maxMessageBytes > 0 && file.bytes + bytes.length > this.config.maxMessageBytes) {
      return this.refuse({ reason: `larger than ${this.config.maxMessageBytes} bytes`, status: '5.3.4' });
    }
    return file.write(bytes);
  }

  private envelopeProblem(problem: EnvelopeProblem | null): void {
    // Nothing was stored yet (the file opens with the first header), so there is nothing to discard.
    if (problem && this.refusal === null) this.refusal = { reason: problem.text, status: STATUS_OF[problem.kind] };
  }

  /** Stops writing a message that passed a limit; end-of-message answers 554. */
  private refuse(refusal: Refusal): Promise<void> | undefined {
    if (this.refusal !== null) return undefined;
    this.refusal = refusal;
    const file = this.file;
    this.file = null;
    return file?.discard();
  }

  /** The spool file, opened with the envelope lines once the content starts. */
  private spool(): SpoolFile | null {
    if (this.skippedFor !== null || this.refusal !== null) return null;
    if (!this.file) {
      this.file = this.config.writer.begin();
      this.file.write(this.gateway ? Buffer.concat([this.envelope.block(), this.gateway]) : this.envelope.block());
    }
    return this.file;
  }

  /** The empty line between header and body, written once (with what the guard still held). */
  private startBody(): Promise<void> | undefined {
    const file = this.spool();
    if (this.inBody || !file) return undefined;
    this.inBody = true;
    return file.write(Buffer.concat([this.guard.end(), CRLF]));
  }

  /** Forgets the message; a started spool file is discarded (the promise settles when it is gone). */
  private reset(): Promise<void> | undefined {
    const file = this.file;
    const discarded = file?.discard().catch((err: Error) => {
      this.config.log.warn(`could not remove ${file.tempPath}: ${err.message}; it is removed at the next start`);
    });
    this.file = null;
    this.envelope = new EnvelopeBuilder(this.config.names, this.config.maxRecipients);
    this.guard = new HeaderGuard(this.reserved, false);
    this.inBody = false;
    this.skippedFor = null;
    this.refusal = null;
    this.headers = 0;
    return discarded;
  }
}
