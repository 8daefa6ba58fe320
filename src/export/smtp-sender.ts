// One SMTP connection to the archive host, on nodemailer's SMTP client:
// connect, EHLO, STARTTLS as configured, AUTH if asked, then any number of
// messages. Every outcome is sorted into what the exporter must do with the
// file: sent (remove), deferred (keep for the next run), rejected (.err), or
// the connection is gone (keep, reconnect or stop).

import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';

export type StartTls = 'require' | 'opportunistic' | 'off';

export interface SenderOptions {
  host: string;
  port: number;
  starttls: StartTls;
  /** PEM CA certificates to trust for the receiver's certificate (else the system's). */
  ca?: Buffer;
  /** Name for EHLO; the host name by default. */
  ehloName?: string;
  timeoutMs: number;
  auth?: { user: string; pass: string };
}

export interface Envelope {
  /** Sender address without brackets; '' for the null sender. */
  from: string;
  to: string[];
  /** Size of the message for the SIZE parameter. */
  size: number;
}

export type SendOutcome =
  | { kind: 'sent'; response: string }
  /** A 4xx answer: try again in a later run. */
  | { kind: 'deferred'; response: string }
  /** A 5xx answer or a message SMTP cannot carry: never retry. */
  | { kind: 'rejected'; response: string }
  /** Accepted for some recipients only. */
  | { kind: 'partial'; response: string; rejected: string[] }
  /** No answer: the connection failed. */
  | { kind: 'lost'; response: string }
  /** The server refuses us, not the message (530 authentication required): keep the file, stop. */
  | { kind: 'refused'; response: string };

/** Connecting failed: nothing could be sent. */
export class ConnectError extends Error {
  override name = 'ConnectError';
  constructor(
    message: string,
    /** true for a refusal by the server (5xx greeting, AUTH refused), false for network trouble. */
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  rejected?: string[];
}

function describe(err: SmtpError): string {
  return err.response ? err.response.replace(/\s+/g, ' ').trim() : `${err.code ?? 'error'}: ${err.message}`;
}

export class SmtpSender {
  private broken = false;

  private constructor(private readonly conn: SMTPConnection) {
    conn.on('error', () => {
      this.broken = true;
    });
    conn.on('end', () => {
      this.broken = true;
    });
  }

  /** True once the connection can carry no more messages. */
  get usable(): boolean {
    return !this.broken;
  }

  static async open(options: SenderOptions): Promise<SmtpSender> {
    // Loaded here, not at start-up: an empty spool never needs it (cron pays start-up time every 15 minutes).
    const { default: Connection } = await import('nodemailer/lib/smtp-connection');
    // Our own socket, for TCP_NODELAY: the message goes out in several writes, and
    // with Nagle the last small one waits for the server's delayed ACK, 40 ms a
    // message on loopback.
    const socket = new Socket();
    socket.setNoDelay(true);
    const conn = new Connection({
      socket,
      host: options.host,
      port: options.port,
      secure: false,
      ignoreTLS: options.starttls === 'off',
      requireTLS: options.starttls === 'require',
      opportunisticTLS: options.starttls === 'opportunistic',
      tls: { ca: options.ca, servername: options.host, minVersion: 'TLSv1.2' },
      name: options.ehloName,
      connectionTimeout: options.timeoutMs,
      greetingTimeout: options.timeoutMs,
      socketTimeout: options.timeoutMs,
      logger: false,
    } as SMTPConnection.Options);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: SmtpError) => reject(new ConnectError(describe(err), Boolean(err.responseCode && err.responseCode >= 500)));
      conn.once('error', onError);
      conn.connect(() => {
        conn.off('error', onError);
        resolve();
      });
    });
    const sender = new SmtpSender(conn);
    if (options.auth) {
      await new Promise<void>((resolve, reject) =>
        conn.login({ user: options.auth!.user, pass: options.auth!.pass }, (err) =>
          err ? reject(new ConnectError(`authentication as ${options.auth!.user} failed: ${describe(err as SmtpError)}`, true)) : resolve(),
        ),
      );
    }
    return sender;
  }

  /** Sends one message; never throws. */
  async send(envelope: Envelope, message: Readable): Promise<SendOutcome> {
    const outcome = await new Promise<SendOutcome>((resolve) => {
      this.conn.send(
        { from: envelope.from, to: envelope.to, size: envelope.size, use8BitMime: true } as SMTPConnection.Envelope,
        message,
        (err, info) => {
          if (!err) {
            const rejected = (info.rejected ?? []).map(String);
            const response = String(info.response ?? '').trim();
            resolve(rejected.length > 0 ? { kind: 'partial', response, rejected } : { kind: 'sent', response });
            return;
          }
          resolve(classify(err as SmtpError));
        },
      );
    });
    message.destroy();
    if (outcome.kind === 'deferred' || outcome.kind === 'rejected') {
      // The server answered: the connection is fine, the transaction must be reset.
      await new Promise<void>((resolve) =>
        this.conn.reset((err) => {
          if (err) this.broken = true;
          resolve();
        }),
      );
    }
    if (outcome.kind === 'lost') this.broken = true;
    return outcome;
  }

  close(): void {
    if (this.broken) this.conn.close();
    else this.conn.quit();
  }
}

function classify(err: SmtpError): SendOutcome {
  const response = describe(err);
  const code = err.responseCode ?? 0;
  if (code === 530) return { kind: 'refused', response };
  if (code >= 500) return { kind: 'rejected', response };
  if (code >= 400) return { kind: 'deferred', response };
  // nodemailer refuses, before sending, an envelope it cannot put into SMTP
  // (CR, LF, <, > in an address) and a message over the server's SIZE.
  if (err.code === 'EENVELOPE' || err.code === 'EMESSAGE') return { kind: 'rejected', response };
  return { kind: 'lost', response };
}
