#!/usr/bin/env node
// benno-smtp: the archive host's SMTP receiver (port 2500) → Benno inbox.

import { CONFIG_KEYS, ConfigError, DEFAULT_CONFIG_FILE, ReceiverConfig, readReceiverConfig } from '../receiver/config';
import { runDaemon } from './daemon';
import { isLoopback } from '../ops/allowlist';
import { createLogger } from '../ops/log';
import { EX_CONFIG, EX_OK, EX_USAGE, Fatal } from './sysexits';
import { listenOrExit, prepareSpool } from './start';
import { hashPassword } from '../receiver/auth';
import { Receiver } from '../receiver/receiver';
import { patchSmtpServer } from '../receiver/smtp-server-patches';
import { SpoolWriter } from '../spool/writer';
import { commandLine, fail, readStdin, rejectRepeated, runMain } from './run';

const PROGRAM = 'benno-smtp';
/** Transactions under way at a stop get this long; with smtp-server's 5 s for a client to hang up, within systemd's TimeoutStopSec=40s. */
const SHUTDOWN_GRACE_MS = 20_000;

const EPILOG = `Stores every message it receives as one file in the inbox; with
envelope_header = true (the default) the SMTP envelope is written first as X-REAL-MAILFROM /
X-REAL-RCPTTO lines, so a file sent by benno-milter2smtp arrives byte for byte as it left.
A field in a message that carries an envelope or gateway name is renamed X-Untrusted-...,
its value kept, except an X-BENNO-GW line the message starts with (multi-import: the
exporter carries the one benno-milter --gateway wrote); a message without one gets the
gateway of the configuration, if set. Nothing else in a message is changed. Addresses are kept as the bytes sent;
control, invisible and reordering characters in them are refused (501).
The 250 after DATA comes only once the file is on disk; otherwise the client gets 451.

Configuration keys (benno-smtp.conf(5)): ${CONFIG_KEYS.join(', ')}.

Exit status: 0 stopped cleanly, 64 bad usage, 69 port in use, 71 cannot listen,
73 inbox or pid file unusable, 78 configuration error.`;

function readConfig(file: string): ReceiverConfig {
  try {
    return readReceiverConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) throw new Fatal(err.message, EX_CONFIG);
    throw err;
  }
}

async function main(): Promise<void> {
  const a = commandLine(
    PROGRAM,
    `Usage: ${PROGRAM} [-c CONFIG] [-l PIDFILE]\n       ${PROGRAM} --check [-c CONFIG]\n       ${PROGRAM} --hash-password < password\n\nReceives mail for Benno MailArchiv over SMTP (port 2500) and stores it in the inbox.`,
    EPILOG,
  )
    .option('config', { alias: 'c', type: 'string', default: DEFAULT_CONFIG_FILE, describe: 'configuration file' })
    .option('pidfile', { alias: 'l', type: 'string', describe: 'write the process id to this file' })
    .option('check', { type: 'boolean', default: false, describe: 'check the configuration and exit' })
    .option('hash-password', { type: 'boolean', default: false, describe: 'read a password on stdin, print its line for the auth_users file (prefix it with "user:")' })
    .parseSync();
  rejectRepeated(PROGRAM, a, ['config', 'pidfile']);

  if (a['hash-password']) {
    const password = (await readStdin()).toString('utf8').replace(/\r?\n$/, '');
    if (!password) fail(PROGRAM, 'no password on stdin', EX_USAGE);
    process.stdout.write(`${hashPassword(password)}\n`);
    return;
  }

  const config = readConfig(a.config);
  const log = createLogger({ program: PROGRAM, level: config.logLevel });
  const writer = new SpoolWriter(config.inbox, { suffix: config.suffix });
  let receiver: Receiver;
  try {
    patchSmtpServer();
    receiver = new Receiver(config, writer, log, { shutdownGraceMs: SHUTDOWN_GRACE_MS });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Fatal(`${a.config}: ${e.code === 'ENOENT' ? `cannot read ${e.path}` : e.message}`, EX_CONFIG);
  }
  if (a.check) {
    process.stdout.write(`${a.config}: OK (listen ${config.listen.host}:${config.listen.port}, inbox ${config.inbox})\n`);
    process.exit(EX_OK);
  }

  await runDaemon(
    {
      async start() {
        await prepareSpool(writer, { noun: 'inbox', elsewhere: `set inbox in ${a.config}` }, log);
        await listenOrExit(() => receiver.listen(), `${config.listen.host}:${config.listen.port}`);
        if (config.authUsers && !config.tlsKey && !config.allowedClients.every((s) => isLoopback(s.address, s.prefix))) {
          log.warn('auth_users without STARTTLS: passwords from other hosts cross the network in clear text; set tls_key and tls_cert');
        }
        const clients = config.allowedClients.map((s) => `${s.address}/${s.prefix}`).join(',');
        return `listening on ${config.listen.host}:${receiver.port}, inbox ${writer.dir}, allowed clients ${clients}`;
      },
      async stop() {
        await receiver.close();
        writer.close();
      },
    },
    { program: PROGRAM, log, pidFile: a.pidfile },
  );
}

runMain(PROGRAM, main);
