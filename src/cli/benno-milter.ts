#!/usr/bin/env node
// benno-milter: the milter daemon. Thin: parse the command line, check it,
// hand over to the milter server, the archiver and the spool writer.

import { archiverFactory, archiverMilterOptions } from '../milter-app/archiver';
import { MilterServer } from '../milter/server';
import { SocketSpec, SocketSpecError, formatSocketSpec, parseSocketSpec } from '../milter/socket-spec';
import { runDaemon } from './daemon';
import { LOG_LEVELS, LogLevel, createLogger } from '../ops/log';
import { EX_USAGE } from './sysexits';
import { listenOrExit, prepareSpool } from './start';
import { Subnet, isLoopback, parseSubnets } from '../ops/allowlist';
import { DEFAULT_ENVELOPE_NAMES, DEFAULT_MAX_RECIPIENTS, MAX_FIELD_NAME, envelopeNamesProblem, gatewayNameProblem, isFieldName } from '../spool/format';
import { DEFAULT_SPOOL_DIR, DEFAULT_SUFFIX, suffixProblem } from '../spool/names';
import { SpoolWriter } from '../spool/writer';
import { commandLine, fail, rejectRepeated, runMain } from './run';

const PROGRAM = 'benno-milter';

const EPILOG = `Socket forms:
  local:/path, unix:/path     unix socket, created mode 0660 (Postfix connects via group postfix)
  inet:PORT@HOST, inet:PORT   TCP (libmilter form); inet6:PORT@HOST for IPv6
  inet:HOST:PORT              TCP (Postfix form)

Postfix main.cf (socket under Postfix's chroot /var/spool/postfix):
  smtpd_milters = unix:/benno-milter/benno-milter.sock
  non_smtpd_milters = unix:/benno-milter/benno-milter.sock
  milter_default_action = tempfail

A TCP socket on an address other than loopback needs --allow: the milter protocol has no
authentication, so whoever can connect can put mail into the archive. Name the MTAs
(--allow 192.0.2.25 --allow 2001:db8::25/128), or accept the risk with --allow any.

Each message becomes one file <sha256>.eml in SPOOLDIR, acknowledged only once it is on disk.
Logs go to stderr (the journal under systemd, facility mail). Exit status: 0 stopped cleanly,
64 bad usage, 69 socket in use by another instance, 71 cannot listen, 73 spool directory
or pid file unusable, 74 I/O error.`;

interface Args {
  socket: string;
  spool: string;
  pidfile?: string;
  suffix: string;
  'sender-header': string;
  'recipient-header': string;
  'skip-daemon': string[];
  gateway?: string;
  'socket-mode': string;
  allow: string[];
  'max-headers': number;
  'max-message-size': number;
  'max-recipients': number;
  'max-connections': number;
  'max-connections-per-client': number;
  timeout: number;
  'negotiation-timeout': number;
  'shutdown-timeout': number;
  'log-level': LogLevel;
}

function parseArgs(): Args {
  return commandLine(
    PROGRAM,
    `Usage: ${PROGRAM} -p SOCKET -o SPOOLDIR [-l PIDFILE] [options]\n\nArchives every message the MTA passes through the milter protocol, with its SMTP envelope (X-REAL-MAILFROM / X-REAL-RCPTTO lines), as one file in SPOOLDIR.`,
    EPILOG,
  )
    .option('socket', {
      alias: 'p',
      type: 'string',
      default: 'local:/var/spool/postfix/benno-milter/benno-milter.sock',
      describe: 'socket to listen on (forms below)',
    })
    .option('spool', { alias: 'o', type: 'string', default: DEFAULT_SPOOL_DIR, describe: 'spool directory: the Benno inbox' })
    .option('pidfile', { alias: 'l', type: 'string', describe: 'write the process id to this file' })
    .option('suffix', { type: 'string', default: DEFAULT_SUFFIX, describe: 'suffix of spool file names' })
    .option('sender-header', { type: 'string', default: DEFAULT_ENVELOPE_NAMES.sender, describe: 'header line for MAIL FROM' })
    .option('recipient-header', { type: 'string', default: DEFAULT_ENVELOPE_NAMES.recipient, describe: 'header line for each RCPT TO' })
    .option('skip-daemon', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe: 'accept without archiving when the {daemon_name} macro is NAME (repeatable); for the smtpd that re-injects mail after a content filter such as Amavis',
    })
    .option('gateway', {
      type: 'string',
      describe: 'multi-import: write "X-BENNO-GW: NAME" after the envelope lines of every file, for Benno\'s container rules',
    })
    .option('socket-mode', { type: 'string', default: '0660', describe: 'mode of a unix socket (octal)' })
    .option('allow', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe: 'TCP socket: only these MTA addresses or CIDR networks may connect (repeatable); "any": everyone. Required for a TCP socket on an address other than loopback',
    })
    .option('max-headers', { type: 'number', default: 10000, describe: 'refuse (554) a message with more header fields; 0: no limit' })
    .option('max-message-size', { type: 'number', default: 0, describe: 'refuse (554) a message larger than this many bytes; 0: no limit beyond Postfix\'s' })
    .option('max-recipients', { type: 'number', default: DEFAULT_MAX_RECIPIENTS, describe: 'refuse (554) a message with more recipients; benno-smtp\'s max_recipients must be at least this' })
    .option('max-connections', { type: 'number', default: 500, describe: 'most MTA connections at once' })
    .option('max-connections-per-client', {
      type: 'number',
      default: 200,
      describe: 'TCP socket: most connections at once from one address (Postfix opens one per smtpd and cleanup process); 0: no limit',
    })
    .option('timeout', { type: 'number', default: 7210, describe: 'close a connection idle this many seconds (libmilter default)' })
    .option('negotiation-timeout', { type: 'number', default: 10, describe: 'close a connection that has not negotiated within this many seconds (an MTA does so at once)' })
    .option('shutdown-timeout', { type: 'number', default: 20, describe: 'on SIGTERM, seconds to let messages in progress finish' })
    .option('log-level', { choices: LOG_LEVELS, default: 'info' as LogLevel, describe: 'least severity logged' })
    .parseSync() as unknown as Args;
}

interface Checked {
  socket: SocketSpec;
  socketMode: number;
  allow: Subnet[];
  /** --allow any: the administrator accepted that everyone may connect. */
  allowAny: boolean;
}

const ANYONE: Subnet[] = [
  { address: '0.0.0.0', prefix: 0, family: 'ipv4' },
  { address: '::', prefix: 0, family: 'ipv6' },
];

function checkArgs(a: Args): Checked {
  const usage = (m: string) => fail(PROGRAM, m, EX_USAGE);
  rejectRepeated(PROGRAM, a as unknown as Record<string, unknown>, [
    'socket', 'spool', 'pidfile', 'suffix', 'gateway', 'sender-header', 'recipient-header', 'socket-mode', 'max-headers', 'max-message-size', 'max-recipients',
    'max-connections', 'max-connections-per-client', 'timeout', 'negotiation-timeout', 'shutdown-timeout', 'log-level',
  ]);
  let socket: SocketSpec;
  try {
    socket = parseSocketSpec(a.socket);
  } catch (err) {
    if (err instanceof SocketSpecError) usage(err.message);
    throw err;
  }
  if (a.spool === '') usage('--spool must name a directory');
  const suffix = suffixProblem(a.suffix);
  if (suffix) usage(`bad --suffix ${suffix}`);
  for (const key of ['sender-header', 'recipient-header'] as const) {
    if (!isFieldName(a[key])) usage(`bad --${key} "${a[key]}": not a header field name of at most ${MAX_FIELD_NAME} characters`);
  }
  if (a.gateway !== undefined) {
    const gateway = gatewayNameProblem(a.gateway);
    if (gateway) usage(`bad --gateway ${gateway}`);
  }
  const namesProblem = envelopeNamesProblem({ sender: a['sender-header'], recipient: a['recipient-header'] });
  if (namesProblem) usage(`bad --sender-header/--recipient-header: ${namesProblem}`);
  if (!/^0?[0-7]{3}$/.test(a['socket-mode'])) usage(`bad --socket-mode "${a['socket-mode']}": want octal such as 0660`);
  for (const key of ['max-connections', 'max-connections-per-client', 'max-recipients', 'max-headers', 'max-message-size'] as const) {
    const min = key === 'max-connections' || key === 'max-recipients' ? 1 : 0;
    if (!Number.isInteger(a[key]) || a[key] < min) usage(`bad --${key} "${a[key]}": want a whole number of at least ${min}`);
  }
  for (const key of ['timeout', 'negotiation-timeout', 'shutdown-timeout'] as const) {
    const positive = key === 'negotiation-timeout';
    if (!Number.isFinite(a[key]) || a[key] < 0 || (positive && a[key] === 0)) usage(`bad --${key} "${a[key]}": want seconds${positive ? ' above 0' : ''}`);
  }
  const allowAny = a.allow.includes('any');
  if (allowAny && a.allow.length > 1) usage('--allow any cannot be combined with addresses');
  let allow: Subnet[] = ANYONE;
  if (!allowAny) {
    try {
      allow = parseSubnets(a.allow.join(' '));
    } catch (err) {
      usage(`bad --allow: ${(err as Error).message}`);
    }
  }
  if (a.allow.length > 0 && socket.kind === 'unix') usage('--allow is for TCP sockets; a unix socket is guarded by its mode and group');
  if (socket.kind === 'inet' && allow.length === 0 && !isLoopback(socket.host)) {
    usage(
      `${formatSocketSpec(socket)} would take mail from anyone who can reach the port: name the MTAs that may connect ` +
        `with --allow ADDRESS[/PREFIX] (in MILTERARGS in /etc/default/benno-milter), or accept that risk with --allow any`,
    );
  }
  return { socket, socketMode: parseInt(a['socket-mode'], 8), allow, allowAny };
}

async function main(): Promise<void> {
  // fsync runs on libuv's thread pool; four threads would serialise a busy MTA's messages.
  process.env.UV_THREADPOOL_SIZE ??= '16';
  const args = parseArgs();
  const checked = checkArgs(args);
  const log = createLogger({ program: PROGRAM, level: args['log-level'] });

  const writer = new SpoolWriter(args.spool, { suffix: args.suffix });
  const server = new MilterServer(
    archiverMilterOptions({ timeoutMs: args.timeout * 1000, negotiationTimeoutMs: args['negotiation-timeout'] * 1000 }),
    archiverFactory({
      writer,
      names: { sender: args['sender-header'], recipient: args['recipient-header'] },
      skipDaemons: new Set(args['skip-daemon']),
      maxHeaders: args['max-headers'],
      maxMessageBytes: args['max-message-size'],
      maxRecipients: args['max-recipients'],
      gateway: args.gateway,
      log,
    }),
    log,
    {
      maxConnections: args['max-connections'],
      maxPerClient: args['max-connections-per-client'],
      socketMode: checked.socketMode,
      allow: checked.allowAny ? undefined : checked.allow,
    },
  );

  await runDaemon(
    {
      async start() {
        await prepareSpool(writer, { noun: 'spool directory', elsewhere: 'pass -o' }, log);
        await listenOrExit(() => server.listen(checked.socket), formatSocketSpec(checked.socket));
        const skip = args['skip-daemon'].length ? `, skipping daemon_name ${args['skip-daemon'].join(',')}` : '';
        if (checked.allowAny && checked.socket.kind === 'inet' && !isLoopback(checked.socket.host)) {
          log.warn(
            `listening on ${server.address} for every client (--allow any): anyone who can reach the port can put mail into the archive; ` +
              'name the MTAs with --allow instead, or firewall the port',
          );
        }
        const gateway = args.gateway ? `, gateway ${args.gateway}` : '';
        return `listening on ${server.address}, spool ${writer.dir}${skip}${gateway}`;
      },
      async stop() {
        await server.close(args['shutdown-timeout'] * 1000);
        writer.close();
      },
    },
    { program: PROGRAM, log, pidFile: args.pidfile },
  );
}

runMain(PROGRAM, main);
