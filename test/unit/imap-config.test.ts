import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { adminLoginFor } from '../../src/imap/admin-login';
import { CONFIG_KEYS, ConfigError, DEFAULTS, checkConfigFiles, parseImapConfig, readImapConfig } from '../../src/imap/config';
import { parseDatabaseUrl } from '../../src/imap/open-store';
import { ConfigError as ReceiverConfigError } from '../../src/receiver/config';
import { ROOT } from '../helpers/daemon';

const EXAMPLE = path.join(ROOT, 'etc', 'benno-imap', 'imapsync.conf');

function parse(body: string) {
  return parseImapConfig(`[imapsync]\n${body}`, 'f');
}

describe('imapsync.conf', () => {
  it('defaults: SQLite, STARTTLS on 143, keys in /etc/benno-imap, private key from stdin', () => {
    const c = parseImapConfig('[imapsync]\n', 'f');
    assert.deepEqual(c.database, { kind: 'sqlite', file: '/var/lib/benno-imap/benno-imap.db' });
    assert.equal(c.pubkey, '/etc/benno-imap/benno-imap.pub');
    assert.equal(c.keyfile, null);
    assert.equal(c.inbox, '/srv/benno/inbox');
    assert.equal(c.suffix, '.eml');
    assert.deepEqual(c.exclude, ['Drafts', 'Trash', 'Junk']);
    assert.deepEqual([c.tls, c.port, c.timeout, c.container, c.logLevel], ['starttls', 143, 60, 'BennoContainer', 'info']);
    assert.equal(c.cafile, undefined);
    assert.equal(c.gateway, undefined);
    assert.equal(parseImapConfig('', 'f').port, 143, 'an empty file is all defaults');
  });

  it("reads the issue's example, trailing comments included", () => {
    const c = parseImapConfig(
      [
        '[imapsync]',
        'database = mysql://benno@db.example.org:3307/benno   ; or sqlite',
        'database_password_file = /etc/benno-imap/mysql.secret  ; MySQL only',
        'pubkey  = /etc/benno-imap/benno-imap.pub',
        'keyfile = /etc/benno-imap/benno-imap.sec   ; commented out: stdin',
        'inbox   = /srv/benno/inbox                 # where messages go',
        'exclude = Drafts, Trash , Junk/Old',
        'tls     = imaps',
        'container = Archive_2',
        '',
        '  ; indented comment',
      ].join('\r\n'),
      'f',
    );
    assert.deepEqual(c.database, { kind: 'mysql', user: 'benno', host: 'db.example.org', port: 3307, database: 'benno' });
    assert.equal(c.databasePasswordFile, '/etc/benno-imap/mysql.secret');
    assert.equal(c.keyfile, '/etc/benno-imap/benno-imap.sec');
    assert.equal(c.inbox, '/srv/benno/inbox');
    assert.deepEqual(c.exclude, ['Drafts', 'Trash', 'Junk/Old']);
    assert.deepEqual([c.tls, c.port, c.container], ['imaps', 993, 'Archive_2']);
    assert.equal(c.source.lines.get('keyfile'), 5);
  });

  it('reads every other key', () => {
    const c = parse(['tls = none', 'cafile = /etc/ssl/in-house.pem', 'timeout = 5', 'gateway = imap-gw', 'suffix = .msg', 'log_level = debug', 'exclude ='].join('\n'));
    assert.deepEqual([c.tls, c.port, c.cafile, c.timeout, c.gateway, c.suffix, c.logLevel], ['none', 143, '/etc/ssl/in-house.pem', 5, 'imap-gw', '.msg', 'debug']);
    assert.deepEqual(c.exclude, []);
    assert.equal(parse('tls = imaps\nport = 1993').port, 1993, 'a port set wins over the TLS default');
    assert.equal(parse('port = 10143\ntls = imaps').port, 10143, 'in either order');
  });

  it('database: sqlite paths and MySQL URLs', () => {
    assert.deepEqual(parseDatabaseUrl('sqlite:/tmp/x.db'), { kind: 'sqlite', file: '/tmp/x.db' });
    assert.deepEqual(parseDatabaseUrl('mysql://b%40x@[::1]/benno_imap'), { kind: 'mysql', user: 'b@x', host: '::1', port: 3306, database: 'benno_imap' });
    assert.deepEqual(parseDatabaseUrl('mysql://benno@127.0.0.1:13306/b'), { kind: 'mysql', user: 'benno', host: '127.0.0.1', port: 13306, database: 'b' });
  });

  const bad: [string, string][] = [
    ['colour = blue', 'f, line 2: unknown key "colour" (known: database, database_password_file, pubkey, keyfile, inbox, suffix, exclude, tls, port, cafile, timeout, container, gateway, log_level, admin_user, admin_password_file)'],
    ['tls = ssl', 'f, line 2: bad tls "ssl": use starttls, imaps, none'],
    ['port = 0', 'f, line 2: bad port "0": use a whole number from 1 to 65535'],
    ['port = 143x', 'f, line 2: bad port "143x": use a whole number from 1 to 65535'],
    ['timeout = 3601', 'f, line 2: bad timeout "3601": use a whole number from 1 to 3600'],
    ['inbox = srv/benno', 'f, line 2: bad inbox "srv/benno": use an absolute path'],
    ['pubkey = benno-imap.pub', 'f, line 2: bad pubkey "benno-imap.pub": use an absolute path'],
    ['keyfile =', 'f, line 2: bad keyfile "": comment the line out to read the private key from stdin'],
    ['keyfile = ~/key', 'f, line 2: bad keyfile "~/key": use an absolute path'],
    ['cafile = ca.pem', 'f, line 2: bad cafile "ca.pem": use an absolute path'],
    ['database = postgres://x@y/z', 'f, line 2: bad database "postgres://x@y/z": use sqlite:/path or mysql://USER@HOST[:PORT]/DBNAME'],
    ['database = sqlite:relative.db', 'f, line 2: bad database "sqlite:relative.db": use sqlite:/absolute/path'],
    ['database = sqlite:///x.db', 'f, line 2: bad database "sqlite:///x.db": use sqlite:/absolute/path'],
    ['database = mysql://benno:Geheim1@db/benno', 'f, line 2: bad database: no password in the URL: put it in database_password_file'],
    ['database = mysql://benno@db/ben-no', 'f, line 2: bad database: use mysql://USER@HOST[:PORT]/DBNAME (DBNAME: letters, digits, _ and $)'],
    ['database = mysql://db/benno', 'f, line 2: bad database: use mysql://USER@HOST[:PORT]/DBNAME (DBNAME: letters, digits, _ and $)'],
    ['database = mysql://benno@db:70000/benno', 'f, line 2: bad database "mysql://benno@db:70000/benno": port 70000 is not 1-65535'],
    ['database = mysql://b%zz@db/benno', 'f, line 2: bad database: the user name has a bad %-escape'],
    ['database_password_file = /etc/benno-imap/mysql.secret', 'f, line 2: database_password_file is for a MySQL database; database is sqlite:/var/lib/benno-imap/benno-imap.db'],
    ['exclude = Drafts,,Trash', 'f, line 2: bad exclude "Drafts,,Trash": an empty folder name; use names separated by commas'],
    ['container = Benno Container', `f, line 2: bad container "Benno Container": 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`],
    ['gateway = gw one', `f, line 2: bad gateway "gw one": is not a gateway name: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`],
    ['suffix = .tmp', 'f, line 2: bad suffix ".tmp": names ending in .tmp are reserved for files being written'],
    ['log_level = verbose', 'f, line 2: bad log_level "verbose": use error, warn, info, debug'],
    ['inbox = /a\ninbox = /b', 'f, line 3: "inbox" is already set on line 2'],
    ['just words', 'f, line 2: expected "key = value", got "just words"'],
    ['[other]', 'f, line 2: unknown section [other]; this file has [imapsync] and [server HOST] sections'],
    ['[imapsync]', 'f, line 2: [imapsync] already starts on line 1'],
  ];
  for (const [body, message] of bad) {
    it(`refuses ${JSON.stringify(body)} with one ConfigError naming file and line`, () => {
      assert.throws(() => parse(body), (e: Error) => {
        assert.ok(e instanceof ConfigError && e.name === 'ConfigError');
        assert.equal(e.message, message);
        return true;
      });
    });
  }

  it('refuses a key before the section line', () => {
    assert.throws(() => parseImapConfig('# top\ninbox = /srv/benno/inbox\n[imapsync]\n', 'f'), {
      name: 'ConfigError',
      message: 'f, line 2: "inbox" comes before the [imapsync] line; put it below',
    });
  });

  it('a password in a MySQL URL appears in no message', () => {
    for (const url of ['mysql://benno:Geheim1@db/benno', 'mysql://benno:Geheim1@db/bad-name', 'mysql://benno:Ge/heim1@db/benno']) {
      assert.throws(() => parse(`database = ${url}`), (e: Error) => e instanceof ConfigError && !e.message.includes('heim1'));
    }
  });

  it('is the same ConfigError class as benno-smtp.conf, so the command lines map it alike', () => {
    assert.equal(ConfigError, ReceiverConfigError);
  });

  it('a file that cannot be read is a ConfigError', () => {
    assert.throws(() => readImapConfig('/nonexistent/imapsync.conf'), { name: 'ConfigError', message: 'cannot read /nonexistent/imapsync.conf: ENOENT' });
  });
});

describe('imapsync.conf: the admin login, in [imapsync] and [server HOST] sections', () => {
  const text = [
    '[imapsync]',
    'admin_user = benno-archive            ; for every server',
    'admin_password_file = /etc/benno-imap/admin.secret',
    '',
    '[server Mail.Example.com]',
    'admin_user = masteruser',
    'admin_password_file = /etc/benno-imap/mail.secret',
    '[server mail.example.com:993]',
    'admin_password_file = /etc/benno-imap/mail-993.secret',
    'admin_user = cyrus',
    '[ server legacy.example.com ]',
    'admin_user =',
    '[server [2001:db8::1]:10143]',
    'admin_user = v6',
    'admin_password_file = /etc/benno-imap/v6.secret',
  ].join('\n');
  const c = parseImapConfig(text, 'f');
  const login = (host: string) => {
    const l = adminLoginFor(c, host);
    return l && `${l.user} ${l.passwordFile} ${l.section} line ${l.line}`;
  };

  it('reads the global keys and the sections', () => {
    assert.equal(c.adminUser, 'benno-archive');
    assert.equal(c.adminPasswordFile, '/etc/benno-imap/admin.secret');
    assert.deepEqual(
      c.servers.map((s) => [s.name, s.host, s.port, s.adminUser, s.adminPasswordFile]),
      [
        ['Mail.Example.com', 'mail.example.com', null, 'masteruser', '/etc/benno-imap/mail.secret'],
        ['mail.example.com:993', 'mail.example.com', 993, 'cyrus', '/etc/benno-imap/mail-993.secret'],
        ['legacy.example.com', 'legacy.example.com', null, '', undefined],
        ['[2001:db8::1]:10143', '2001:db8::1', 10143, 'v6', '/etc/benno-imap/v6.secret'],
      ],
    );
    assert.equal(c.port, 143);
  });

  it("an account's server picks its section: HOST:PORT over HOST over [imapsync]; an empty admin_user is no admin login", () => {
    assert.equal(login('mail.example.com'), 'masteruser /etc/benno-imap/mail.secret [server Mail.Example.com] line 7');
    assert.equal(login('MAIL.example.com:143'), 'masteruser /etc/benno-imap/mail.secret [server Mail.Example.com] line 7');
    assert.equal(login('mail.example.com:993'), 'cyrus /etc/benno-imap/mail-993.secret [server mail.example.com:993] line 9');
    assert.equal(login('legacy.example.com'), null);
    assert.equal(login('legacy.example.com:993'), null, 'a section without a port is every port of its host');
    assert.equal(login('[2001:db8::1]:10143'), 'v6 /etc/benno-imap/v6.secret [server [2001:db8::1]:10143] line 15');
    assert.equal(login('[2001:db8::1]'), 'benno-archive /etc/benno-imap/admin.secret [imapsync] line 3');
    assert.equal(login('other.example.com'), 'benno-archive /etc/benno-imap/admin.secret [imapsync] line 3');
    assert.equal(login('mail.example.com.evil.test'), 'benno-archive /etc/benno-imap/admin.secret [imapsync] line 3', 'whole names only');
  });

  it("the configuration's port is the port of an account without one", () => {
    const imaps = parseImapConfig(text.replace('[imapsync]', '[imapsync]\ntls = imaps'), 'f');
    assert.equal(adminLoginFor(imaps, 'mail.example.com')?.user, 'cyrus');
  });

  it('without admin keys, no account has an admin login; sections alone work too', () => {
    assert.equal(adminLoginFor(parse(''), 'mail.example.com'), null);
    const only = parseImapConfig('[imapsync]\n[server mail.example.com]\nadmin_user = m\nadmin_password_file = /x', 'f');
    assert.equal(adminLoginFor(only, 'mail.example.com')?.user, 'm');
    assert.equal(adminLoginFor(only, 'other.example.com'), null);
  });

  const bad: [string, string][] = [
    ['[imapsync]\nadmin_user =', 'f, line 2: bad admin_user "": comment the line out for no admin login'],
    ['[imapsync]\nadmin_user = a\tb\nadmin_password_file = /x', 'f, line 2: bad admin_user "a\tb": up to 255 characters, no control characters'],
    [`[imapsync]\nadmin_user = ${'a'.repeat(256)}\nadmin_password_file = /x`, `f, line 2: bad admin_user "${'a'.repeat(256)}": up to 255 characters, no control characters`],
    ['[imapsync]\nadmin_user = m\nadmin_password_file = admin.secret', 'f, line 3: bad admin_password_file "admin.secret": use an absolute path'],
    ['[imapsync]\nadmin_user = m', 'f, line 2: admin_user needs admin_password_file, the file whose first line is its password'],
    ['[imapsync]\n\nadmin_password_file = /x', 'f, line 3: admin_password_file without admin_user: whose password is it?'],
    ['[imapsync]\n[server]', 'f, line 2: bad section [server]: use [server HOST] or [server HOST:PORT], HOST as the accounts have it (benno-imapuser -i), an IPv6 address in brackets'],
    ['[imapsync]\n[server a b]', 'f, line 2: bad section [server a b]: use [server HOST] or [server HOST:PORT], HOST as the accounts have it (benno-imapuser -i), an IPv6 address in brackets'],
    ['[imapsync]\n[server a:0]', 'f, line 2: bad section [server a:0]: use [server HOST] or [server HOST:PORT], HOST as the accounts have it (benno-imapuser -i), an IPv6 address in brackets'],
    ['[imapsync]\n[server a:65536]', 'f, line 2: bad section [server a:65536]: use [server HOST] or [server HOST:PORT], HOST as the accounts have it (benno-imapuser -i), an IPv6 address in brackets'],
    ['[imapsync]\n[server 2001:db8::1]', 'f, line 2: bad section [server 2001:db8::1]: use [server HOST] or [server HOST:PORT], HOST as the accounts have it (benno-imapuser -i), an IPv6 address in brackets'],
    ['[imapsync]\n[servers a]', 'f, line 2: unknown section [servers a]; this file has [imapsync] and [server HOST] sections'],
    ['[imapsync]\n[server a]\ntls = imaps', 'f, line 3: unknown key "tls" (known: admin_user, admin_password_file)'],
    ['[imapsync]\n[server a]\nadmin_user = m\nadmin_user = n', 'f, line 4: "admin_user" is already set on line 3'],
    ['[imapsync]\n[server a]', 'f, line 2: [server a] needs admin_user and admin_password_file, or "admin_user =" (empty) for the users\' own passwords on this server'],
    ['[imapsync]\n[server a]\nadmin_password_file = /x', 'f, line 2: [server a] needs admin_user and admin_password_file, or "admin_user =" (empty) for the users\' own passwords on this server'],
    ['[imapsync]\n[server a]\nadmin_user = m', 'f, line 3: admin_user needs admin_password_file, the file whose first line is its password'],
    ['[imapsync]\n[server a]\nadmin_user =\nadmin_password_file = /x', 'f, line 4: admin_password_file with an empty admin_user, which means the users\' own passwords on this server: drop one of the two'],
    ['[imapsync]\n[server a]\nadmin_user =\n[server a]', 'f, line 4: [server a] already starts on line 2'],
    ['[imapsync]\n[server a:143]\nadmin_user =\n[server A:143]\nadmin_user =', 'f, line 4: [server A:143] is the same server as [server a:143] (f, line 2)'],
    ['[imapsync]\n[server a]\nadmin_user =\n[imapsync]', 'f, line 4: [imapsync] already starts on line 1'],
  ];
  for (const [body, message] of bad) {
    it(`refuses ${JSON.stringify(body)}`, () => {
      assert.throws(() => parseImapConfig(body, 'f'), (e: Error) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.message, message);
        return true;
      });
    });
  }
});

describe('the files imapsync.conf names', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imap-config-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: string, mode = 0o600) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, content, { mode });
    return p;
  };
  const pub = file('k.pub', 'x');
  const sec = file('k.sec', 'x');
  const ca = file('ca.pem', 'x');
  const empty = file('empty', '');
  const missing = path.join(dir, 'missing');

  it('readable files pass; what a program does not need is not checked', () => {
    const c = parse(`pubkey = ${pub}\nkeyfile = ${sec}\ncafile = ${ca}`);
    checkConfigFiles(c, { publicKey: true, privateKey: true, imap: true, database: true });
    checkConfigFiles(parse(`pubkey = ${missing}\ncafile = ${missing}`), { privateKey: true, database: true });
    checkConfigFiles(parse(''), { privateKey: true }); // keyfile unset: stdin
  });

  const cases: [string, Parameters<typeof checkConfigFiles>[1], string][] = [
    [`keyfile = ${missing}`, { privateKey: true }, `f, line 2: keyfile ${missing}: cannot open it (ENOENT); create a pair with benno-imapuser --genkey, or comment keyfile out to pipe the key in on stdin`],
    [`pubkey = ${missing}`, { publicKey: true }, `f, line 2: pubkey ${missing}: cannot open it (ENOENT); create a pair with benno-imapuser --genkey`],
    [`\n\ncafile = ${dir}`, { imap: true }, `f, line 4: cafile ${dir}: is not a regular file`],
    [`keyfile = ${empty}`, { privateKey: true }, `f, line 2: keyfile ${empty}: is empty`],
    [`database = mysql://benno@localhost/benno\ndatabase_password_file = ${missing}`, { database: true }, `f, line 3: database_password_file ${missing}: cannot open it (ENOENT)`],
  ];
  for (const [body, needs, message] of cases) {
    it(`refuses ${JSON.stringify(body.trim())} with ${JSON.stringify(needs)}`, () => {
      assert.throws(() => checkConfigFiles(parse(body), needs), { name: 'ConfigError', message });
    });
  }

  it('names a default path as such', () => {
    const c = parse('');
    assert.throws(() => checkConfigFiles({ ...c, pubkey: missing }, { publicKey: true }), {
      message: `f: pubkey ${missing} (the default): cannot open it (ENOENT); create a pair with benno-imapuser --genkey`,
    });
  });

  it('a key file its user cannot read is refused', () => {
    fs.chmodSync(dir, 0o755); // the file's own mode is what keeps nobody out
    const locked = file('locked.sec', 'x', 0o600);
    const body = `keyfile = ${locked}`;
    const check = `require(${JSON.stringify(path.join(ROOT, 'dist', 'src', 'imap', 'config.js'))}).checkConfigFiles(require(${JSON.stringify(path.join(ROOT, 'dist', 'src', 'imap', 'config.js'))}).parseImapConfig(process.argv[1], 'f'), { privateKey: true })`;
    // Root opens any file; the check runs as nobody, as benno-imapsync runs as benno.
    const nobody = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
    if (nobody.length === 0) fs.chmodSync(locked, 0o000);
    const r = spawnSync(nobody[0] ?? process.execPath, [...nobody.slice(1), ...(nobody.length ? [process.execPath] : []), '-e', check, `[imapsync]\n${body}`], { encoding: 'utf8' });
    assert.match(r.stderr, new RegExp(`ConfigError: f, line 2: keyfile ${locked}: cannot open it \\(EACCES\\)`));
    assert.notEqual(r.status, 0);
  });

  it('admin password files: every one checked when the admin login is needed, a section\'s with its own line', () => {
    const secret = file('admin.secret', 'admin pw\n', 0o600);
    const config = (global: string, section: string) =>
      parse(`admin_user = a\nadmin_password_file = ${global}\n[server mail.example.com]\nadmin_user = m\nadmin_password_file = ${section}`);
    assert.deepEqual(checkConfigFiles(config(secret, secret), { adminLogin: true }), []);
    assert.deepEqual(checkConfigFiles(config(missing, missing), { imap: true, privateKey: true, database: true }), [], 'not needed: not checked');
    assert.throws(() => checkConfigFiles(config(missing, secret), { adminLogin: true }), {
      name: 'ConfigError',
      message: `f, line 3: admin_password_file ${missing}: cannot open it (ENOENT)`,
    });
    assert.throws(() => checkConfigFiles(config(secret, missing), { adminLogin: true }), {
      name: 'ConfigError',
      message: `f, line 6: admin_password_file ${missing}: cannot open it (ENOENT)`,
    });
    assert.throws(() => checkConfigFiles(config(secret, empty), { adminLogin: true }), { message: `f, line 6: admin_password_file ${empty}: is empty` });
    assert.throws(() => checkConfigFiles(config(dir, secret), { adminLogin: true }), { message: `f, line 3: admin_password_file ${dir}: is not a regular file` });
  });

  it('an admin password file others can read is refused, one its group can read is a warning; the password is in no message', () => {
    const open = file('open.secret', 'admin pw\n', 0o644);
    fs.chmodSync(open, 0o644); // the umask may have taken bits away
    const group = file('group.secret', 'admin pw\n', 0o640);
    fs.chmodSync(group, 0o640);
    const config = (f: string) => parse(`\nadmin_user = a\nadmin_password_file = ${f}`);
    assert.throws(() => checkConfigFiles(config(open), { adminLogin: true }), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.message, `f, line 4: admin_password_file ${open}: readable by others (mode 0644), and it opens every mailbox: chmod 600 it, owned by the user benno-imapsync runs as`);
      assert.ok(!e.message.includes('admin pw'));
      return true;
    });
    assert.deepEqual(checkConfigFiles(config(group), { adminLogin: true }), [
      `f, line 4: admin_password_file ${group}: readable by its group (mode 0640); chmod 600 it, owned by the user benno-imapsync runs as, unless no one else is in that group`,
    ]);
    const both = parse(`admin_user = a\nadmin_password_file = ${group}\n[server x]\nadmin_user = b\nadmin_password_file = ${group}`);
    assert.equal(checkConfigFiles(both, { adminLogin: true }).length, 1, 'one warning per file');
  });

  it('a key file never appears in a message with its content', () => {
    const secret = file('secret.sec', 'TOPSECRETKEYBYTES');
    assert.doesNotThrow(() => checkConfigFiles(parse(`keyfile = ${secret}`), { privateKey: true }));
    assert.throws(() => checkConfigFiles(parse(`keyfile = ${secret}/x`), { privateKey: true }), (e: Error) => !e.message.includes('TOPSECRET'));
  });
});

describe('etc/benno-imap/imapsync.conf', () => {
  const text = fs.readFileSync(EXAMPLE, 'utf8');
  const examples = text.split('\n').filter((l) => /^#[a-z_]+ = /.test(l)).map((l) => l.slice(1));
  /** The admin login's lines go together (both keys or neither), [server] sections with them. */
  const isAdmin = (l: string) => /^#?(admin_|\[server )/.test(l);

  it('parses as shipped: only keyfile set, as the key pair the package makes is there', () => {
    const c = parseImapConfig(text, 'imapsync.conf');
    assert.deepEqual([...c.source.lines.keys()], ['keyfile']);
    assert.equal(c.keyfile, '/etc/benno-imap/benno-imap.sec');
    assert.deepEqual({ ...c, source: undefined, keyfile: null }, { ...DEFAULTS, source: undefined });
  });

  it('documents every key', () => {
    for (const key of CONFIG_KEYS) assert.ok(examples.some((l) => l.startsWith(`${key} = `)) || text.includes(`\n${key} = `), `${key} is in the file`);
  });

  it('every commented example line parses', () => {
    assert.ok(examples.length >= CONFIG_KEYS.length - 1);
    for (const line of examples.filter((l) => !isAdmin(l))) {
      // The password file goes with a MySQL database only.
      const context = line.startsWith('database_password_file') ? 'database = mysql://benno@localhost/benno\n' : '';
      parse(context + line);
    }
  });

  it('every commented default is the default', () => {
    const c = parse(examples.filter((l) => !/^(cafile|gateway|database_password_file) /.test(l) && !isAdmin(l)).join('\n'));
    assert.deepEqual({ ...c, source: undefined }, { ...DEFAULTS, source: undefined });
  });

  it('the admin login example parses, its [server] sections included, when all its lines are uncommented', () => {
    const admin = text.split('\n').filter((l) => isAdmin(l) || l === '#').map((l) => l.slice(1)).join('\n');
    const c = parse(admin);
    assert.equal(c.adminUser, 'benno-archive');
    assert.deepEqual(c.servers.map((s) => [s.name, s.adminUser]), [['mail2.example.com', 'masteruser'], ['legacy.example.com:993', '']]);
    assert.equal(adminLoginFor(c, 'mail2.example.com')?.user, 'masteruser');
    assert.equal(adminLoginFor({ ...c, port: 993 }, 'legacy.example.com'), null);
  });
});
