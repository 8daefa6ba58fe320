// The milter application: each message the MTA shows us goes, with its
// envelope, into one spool file. The MTA gets its end-of-message answer only
// after the file is durable; any doubt is a temporary failure.

import * as C from '../milter/constants';
import { ACCEPT, MilterReply } from '../milter/codec';
import type { MessageHandler, MilterOptions, MilterSession } from '../milter/session';
import { CRLF, EnvelopeNames, bareAddress, envelopeBlock, headerLine } from '../spool/format';
import type { SpoolFile, SpoolWriter } from '../spool/writer';
import { Logger, printable } from '../ops/log';

/**
 * Only end-of-message needs an answer. Every other event is either switched
 * off or declared no-reply, so a message costs the MTA one round trip.
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

/** {daemon_name} at MAIL tells an Amavis re-injection apart; the queue id is known by end-of-message. */
export const ARCHIVER_MACROS = new Map<number, string>([
  [C.SMFIM_ENVFROM, '{daemon_name}'],
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
  log: Logger;
}

export function archiverMilterOptions(timeoutMs: number): MilterOptions {
  return { protocol: ARCHIVER_PROTOCOL, actions: 0, macroLists: ARCHIVER_MACROS, timeoutMs };
}

export function archiverFactory(config: ArchiverConfig): (session: MilterSession) => MessageHandler {
  return (session) => new ArchiveHandler(session, config);
}

function addressText(arg: Buffer): string {
  return printable(bareAddress(arg).toString('utf8'));
}

class ArchiveHandler implements MessageHandler {
  private sender: Buffer | null = null;
  private recipients: Buffer[] = [];
  private file: SpoolFile | null = null;
  private inBody = false;
  private skippedFor: string | null = null;
  /** Why the message is refused for good, once a limit is passed. */
  private refusal: string | null = null;
  private headers = 0;

  constructor(
    private readonly session: MilterSession,
    private readonly config: ArchiverConfig,
  ) {}

  mail(sender: Buffer): void {
    this.reset();
    this.sender = sender;
    const daemon = this.session.macro('daemon_name');
    if (daemon !== undefined && this.config.skipDaemons.has(daemon)) this.skippedFor = daemon;
  }

  rcpt(recipient: Buffer): void {
    this.recipients.push(recipient);
  }

  header(name: Buffer, value: Buffer): Promise<void> | undefined {
    if (this.config.maxHeaders > 0 && ++this.headers > this.config.maxHeaders) {
      return this.refuse(`more than ${this.config.maxHeaders} header fields`);
    }
    return this.write(headerLine(name, value));
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
        `${queueId}: not archived: daemon_name=${printable(this.skippedFor)} is in --skip-daemon (already archived before the content filter)`,
      );
      this.reset();
      return ACCEPT;
    }
    if (this.refusal !== null) {
      const text = `554 5.3.4 Message refused by the archive: ${this.refusal}`;
      this.config.log.warn(`${queueId}: not archived, refused: ${this.refusal} (answered "${text}"); see --max-headers and --max-message-size`);
      this.reset();
      return { type: 'replycode', text };
    }
    this.startBody();
    const file = this.file!;
    const sender = addressText(this.sender ?? Buffer.alloc(0));
    const count = this.recipients.length;
    this.file = null;
    const started = process.hrtime.bigint();
    try {
      const done = await file.commit();
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      this.config.log.info(
        `${queueId}: archived from=<${sender}> rcpts=${count} size=${done.size} file=${done.name} ms=${ms.toFixed(1)}`,
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
      return this.refuse(`larger than ${this.config.maxMessageBytes} bytes`);
    }
    return file.write(bytes);
  }

  /** Stops writing a message that passed a limit; end-of-message answers 554. */
  private refuse(reason: string): Promise<void> | undefined {
    if (this.refusal !== null) return undefined;
    this.refusal = reason;
    const file = this.file;
    this.file = null;
    return file?.discard();
  }

  /** The spool file, opened with the envelope lines once the content starts. */
  private spool(): SpoolFile | null {
    if (this.skippedFor !== null || this.refusal !== null) return null;
    if (!this.file) {
      this.file = this.config.writer.begin();
      this.file.write(envelopeBlock(this.config.names, this.sender ?? Buffer.alloc(0), this.recipients));
    }
    return this.file;
  }

  /** The empty line between header and body, written once. */
  private startBody(): Promise<void> | undefined {
    const file = this.spool();
    if (this.inBody || !file) return undefined;
    this.inBody = true;
    return file.write(CRLF);
  }

  /** Forgets the message; a started spool file is discarded (the promise settles when it is gone). */
  private reset(): Promise<void> | undefined {
    const file = this.file;
    const discarded = file?.discard().catch((err: Error) => {
      this.config.log.warn(`could not remove ${file.tempPath}: ${err.message}; it is removed at the next start`);
    });
    this.file = null;
    this.sender = null;
    this.recipients = [];
    this.inBody = false;
    this.skippedFor = null;
    this.refusal = null;
    this.headers = 0;
    return discarded;
  }
}
