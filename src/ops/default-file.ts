// /etc/default/benno-milter: shell-style "KEY=value" assignments, as
// systemd's EnvironmentFile= and a sourcing shell read them. Comments,
// blank lines, "export KEY=value", single and double quotes; no expansion
// of $VARIABLES (systemd does not expand them either). Keys this program
// does not use (SOCKET, MILTERARGS, ...) are ignored.

import * as fs from 'node:fs';

export class DefaultFileError extends Error {}

export function parseDefaultFile(text: string, file: string): Map<string, string> {
  const vars = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new DefaultFileError(`${file}, line ${i + 1}: expected KEY=value, got "${line}"`);
    vars.set(m[1], unquote(m[2], `${file}, line ${i + 1}`));
  });
  return vars;
}

function unquote(v: string, where: string): string {
  let out = '';
  let i = 0;
  while (i < v.length) {
    const c = v[i];
    if (c === "'") {
      const end = v.indexOf("'", i + 1);
      if (end < 0) throw new DefaultFileError(`${where}: unterminated ' quote`);
      out += v.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= v.length) throw new DefaultFileError(`${where}: unterminated " quote`);
        if (v[i] === '"') break;
        if (v[i] === '\\' && i + 1 < v.length && '"\\$`'.includes(v[i + 1])) i++;
        out += v[i++];
      }
      i++;
    } else if (/\s/.test(c)) {
      // unquoted white space ends the value; what follows may only be a comment
      const rest = v.slice(i).trim();
      if (rest !== '' && !rest.startsWith('#')) throw new DefaultFileError(`${where}: quote values that contain spaces`);
      break;
    } else if (c === '\\' && i + 1 < v.length) {
      out += v[i + 1];
      i += 2;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** The file's variables; an absent file has none. */
export function readDefaultFile(file: string): Map<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new DefaultFileError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseDefaultFile(text, file);
}

/** A value as the file writes it: bare when it needs no quotes, else in double quotes. */
function quoted(value: string): string {
  return /^[A-Za-z0-9_./:@,+=-]*$/.test(value) ? value : `"${value.replace(/["\\$`]/g, '\\$&')}"`;
}

/**
 * The file's text with KEY=value set for each entry: the last active
 * assignment of a key is replaced in place (so the administrator's comments
 * stay beside it), a key without one is appended. Commented-out lines stay
 * as they are: they document the default.
 */
export function withDefaultValues(text: string, values: ReadonlyMap<string, string>): string {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  for (const [key, value] of values) {
    const line = `${key}=${quoted(value)}`;
    let at = -1;
    lines.forEach((l, i) => {
      if (new RegExp(`^\\s*(?:export\\s+)?${key}=`).test(l)) at = i;
    });
    if (at >= 0) lines[at] = line;
    else lines.push(line);
  }
  return `${lines.join('\n')}\n`;
}
