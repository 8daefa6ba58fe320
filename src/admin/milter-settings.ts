// Where this host's benno-milter listens and writes, as the service will
// run it: the unit's defaults, then the package's override.conf (hosts
// without Postfix), then /etc/default/benno-milter, the same order systemd
// applies them.

import * as fs from 'node:fs';
import { parseDefaultFile, readDefaultFile } from '../ops/default-file';
import { DEFAULT_SPOOL_DIR, DEFAULT_SUFFIX } from '../spool/names';

export interface MilterSettings {
  socketType: string;
  socket: string;
  spoolDir: string;
  /** Suffix of spool file names: the milter's --suffix, else the exporter's SUFFIX, else the default. */
  suffix: string;
  milterArgs: string;
  /** Every variable of the default file (BENNOHOST, ...). */
  vars: Map<string, string>;
}

export const UNIT_DEFAULTS = {
  SOCKET_TYPE: 'local',
  SOCKET: '/var/spool/postfix/benno-milter/benno-milter.sock',
  SPOOLDIR: DEFAULT_SPOOL_DIR,
  MILTERARGS: '',
};

export const DEFAULT_FILE = '/etc/default/benno-milter';
export const OVERRIDE_FILE = '/etc/systemd/system/benno-milter.service.d/override.conf';

/** Environment= assignments of a systemd drop-in. */
export function parseOverride(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*Environment\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    for (const assignment of m[1].match(/"[^"]*"|\S+/g) ?? []) {
      const a = assignment.replace(/^"|"$/g, '');
      const eq = a.indexOf('=');
      if (eq > 0) vars.set(a.slice(0, eq), a.slice(eq + 1));
    }
  }
  return vars;
}

export function milterSettings(defaultFile = DEFAULT_FILE, overrideFile = OVERRIDE_FILE): MilterSettings {
  const override = fs.existsSync(overrideFile) ? parseOverride(fs.readFileSync(overrideFile, 'utf8')) : new Map<string, string>();
  const vars = readDefaultFile(defaultFile);
  const pick = (key: keyof typeof UNIT_DEFAULTS) => vars.get(key) || override.get(key) || UNIT_DEFAULTS[key];
  const milterArgs = pick('MILTERARGS');
  const suffix = milterOptionValues(milterArgs, '--suffix').pop() ?? vars.get('SUFFIX') ?? DEFAULT_SUFFIX;
  return { socketType: pick('SOCKET_TYPE'), socket: pick('SOCKET'), spoolDir: pick('SPOOLDIR'), suffix, milterArgs, vars };
}

export type SocketSettings = Pick<MilterSettings, 'socketType' | 'socket'>;

/** The socket as benno-milter.service hands it to the milter: -p ${SOCKET_TYPE}:${SOCKET}. */
export function milterSocketText(settings: SocketSettings): string {
  return `${settings.socketType}:${settings.socket}`;
}

export { parseDefaultFile };

const unquote = (w: string) => w.replace(/^["']|["']$/g, '');

/** MILTERARGS as words, each with the value of an option "--name VALUE" or "--name=VALUE" it carries. */
function optionWords(milterArgs: string, name: string): { words: string[]; value: string | null }[] {
  const words = milterArgs.match(/"[^"]*"|'[^']*'|\S+/g) ?? [];
  const out: { words: string[]; value: string | null }[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = unquote(words[i]);
    if (w === name && words[i + 1]) out.push({ words: [words[i], words[++i]], value: unquote(words[i]) });
    else if (w.startsWith(`${name}=`)) out.push({ words: [words[i]], value: w.slice(name.length + 1) });
    else out.push({ words: [words[i]], value: null });
  }
  return out;
}

/** The values of one option in MILTERARGS ("--name VALUE" and "--name=VALUE", repeatable). */
export function milterOptionValues(milterArgs: string, name: string): string[] {
  return optionWords(milterArgs, name).flatMap((o) => (o.value === null ? [] : [o.value]));
}

/** MILTERARGS without one option, every other word as it was written. */
export function withoutOption(milterArgs: string, name: string): string {
  return optionWords(milterArgs, name)
    .filter((o) => o.value === null)
    .flatMap((o) => o.words)
    .join(' ');
}

/** The --skip-daemon names in MILTERARGS. */
export function skippedDaemons(milterArgs: string): string[] {
  return milterOptionValues(milterArgs, '--skip-daemon');
}
