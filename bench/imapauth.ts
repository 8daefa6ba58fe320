// (w) The web login (issue 12): benno_imapauth as Benno's web interface runs
//     it, one process per login with the user name and the password on
//     stdin, against a throwaway Dovecot on loopback (STARTTLS, CA file),
//     the SQLite accounts database, and the password stored after each
//     good login. 100 logins one after the other: median and worst, next to
//     the start of a bare Node process, which every login pays.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../test/helpers/daemon';
import { Dovecot, ImapUser } from '../test/helpers/imap-servers';
import { Options, Part, median, spoolBase } from './measure';

const AUTH = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapauth.js');
const USER = path.join(ROOT, 'dist', 'src', 'cli', 'benno-imapuser.js');
const SABINE: ImapUser = { user: 'sabine', password: 'sabine pw' };

/** Milliseconds from spawn to exit; the answer must be what is expected. */
function timedRun(args: string[], input: string, expect: RegExp): Promise<number> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('close', () => (expect.test(out) ? resolve(Number(process.hrtime.bigint() - started) / 1e6) : reject(new Error(`unexpected answer: ${out}`))));
    p.stdin.end(input);
  });
}

async function run(options: Options): Promise<string[][]> {
  const logins = options.messages ?? 100;
  const dir = path.join(spoolBase(), 'imapauth');
  fs.mkdirSync(dir, { recursive: true });
  const dovecot = await Dovecot.start({ users: [SABINE] });
  try {
    const sync = path.join(dir, 'imapsync.conf');
    const auth = path.join(dir, 'imapauth.conf');
    const common = [`database = sqlite:${dir}/accounts.db`, `pubkey = ${dir}/key.pub`, `port = ${dovecot.imapPort}`, `cafile = ${dovecot.caFile}`];
    fs.writeFileSync(sync, ['[imapsync]', ...common, `keyfile = ${dir}/key.sec`, `inbox = ${dir}`, ''].join('\n'));
    fs.writeFileSync(auth, ['[imapauth]', ...common, ''].join('\n'));
    for (const args of [['--genkey'], ['-u', SABINE.user, '-i', '127.0.0.1', '-e', 'sabine@example.org']]) {
      const r = spawnSync(process.execPath, [USER, '-c', sync, ...args], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
    }
    const login: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < logins; i++) {
      login.push(await timedRun([AUTH, '-c', auth], `${SABINE.user}\n${SABINE.password}\n`, /AUTH OK\n$/));
      bare.push(await timedRun(['-e', '0'], '', /^$/));
    }
    const worst = (xs: number[]) => Math.max(...xs);
    console.error(`(w) benno_imapauth median ${median(login).toFixed(0)} ms, worst ${worst(login).toFixed(0)} ms`);
    return [[
      `### (w) Web login: ${logins} logins through benno_imapauth against Dovecot on loopback (STARTTLS), one process each`,
      '',
      '| | median ms | worst ms |',
      '| --- | ---: | ---: |',
      `| benno_imapauth (login checked, password stored) | ${median(login).toFixed(0)} | ${worst(login).toFixed(0)} |`,
      `| \`node -e 0\` (the start every login pays) | ${median(bare).toFixed(0)} | ${worst(bare).toFixed(0)} |`,
      '',
    ]];
  } finally {
    await dovecot.stop();
  }
}

export const imapauthBench: Part = { key: 'w', run };
