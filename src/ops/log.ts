// Logging: one line per event on stderr. Under systemd the journal takes
// stderr; each line carries a "<N>" priority prefix (sd-daemon(3)) and the
// unit's SyslogFacility=mail files it with the mail logs. Outside systemd the
// line gets a timestamp and the program name, syslog style.

import { spawn } from 'node:child_process';
import * as winston from 'winston';
import { printable } from './text';

export type Logger = Pick<winston.Logger, 'error' | 'warn' | 'info' | 'debug'>;

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const SYSLOG_PRIORITY: Record<string, number> = { error: 3, warn: 4, info: 6, debug: 7 };

export interface LoggerOptions {
  program: string;
  level: LogLevel;
  /** Journal format; by default detected from $JOURNAL_STREAM. */
  journal?: boolean;
  /** Where lines go; stderr unless a test wants them. */
  stream?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const journal = options.journal ?? Boolean(process.env.JOURNAL_STREAM);
  // Every line passes through printable(): whatever a peer managed to put
  // into a message (a queue id, an address, a server's reply), it cannot
  // start a second line, least of all one with a forged "<3>" priority.
  const line = journal
    ? winston.format.printf((i) => `<${SYSLOG_PRIORITY[i.level] ?? 6}>${printable(String(i.message))}`)
    : winston.format.printf(
        (i) => `${new Date().toISOString()} ${options.program}[${process.pid}]: ${i.level}: ${printable(String(i.message))}`,
      );
  const transport = options.stream
    ? new winston.transports.Stream({ stream: options.stream })
    : new winston.transports.Console({ stderrLevels: [...LOG_LEVELS] });
  return winston.createLogger({
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    level: options.level,
    format: line,
    transports: [transport],
  });
}

export interface SyslogSink {
  /** Takes the journal format ("<N>line"), which logger(1) reads with --prio-prefix. */
  stream: NodeJS.WritableStream;
  /** Ends the stream and waits until logger(1) has sent every line. */
  close(): Promise<void>;
}

/**
 * Lines to syslog, facility mail, for runs outside systemd (cron). Node has
 * no unix datagram socket, so the lines go through logger(1) from bsdutils
 * (Essential on Debian), which speaks syslog's local protocol for us.
 */
export function openSyslog(program: string, socket = '/dev/log'): SyslogSink {
  const child = spawn('logger', ['--prio-prefix', '-p', 'mail.info', '-t', program, `--id=${process.pid}`, '--socket-errors=on', '-u', socket], {
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => {
    child.on('error', (err) => {
      process.stderr.write(`${program}: cannot start logger(1) for syslog: ${err.message}\n`);
      resolve();
    });
    child.on('exit', () => resolve());
  });
  // A logger that died must not take the program with it (EPIPE).
  child.stdin.on('error', () => undefined);
  return {
    stream: child.stdin,
    close: async () => {
      child.stdin.end();
      await exited;
    },
  };
}
