// "key = value" configuration files (benno-smtp.conf, imapsync.conf): the
// line handling both share, so that a bad line reads the same in every
// program: "FILE, line N: problem", as one ConfigError, which each program's
// command line turns into exit status 78. What a key means stays with the
// program's own table of setters.

import * as fs from 'node:fs';
import { LOG_LEVELS, LogLevel } from './log';

/** A configuration file that cannot be used; the message says which file, where and why. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A setter's complaint about a value; applyConfigLines adds file, line and key. */
export class ValueError extends Error {
  /** hideValue: the value may hold a secret (a password in a URL), so the message does not quote it. */
  constructor(message: string, readonly hideValue = false) {
    super(message);
  }
}

export type Setter<C> = (config: C, value: string) => void;

export interface ConfigSyntax {
  /** Characters that start a comment line. */
  comments: string;
  /** A comment may also follow a value after white space ("tls = imaps   ; port 993"). */
  trailingComments?: boolean;
  /** The one "[section]" every key belongs to; absent: the file has no sections. */
  section?: string;
}

/**
 * Applies every "key = value" line of text to config through keys; returns
 * the line each key was set on, for checks that span keys.
 */
export function applyConfigLines<C>(text: string, file: string, config: C, keys: Record<string, Setter<C>>, syntax: ConfigSyntax): Map<string, number> {
  const table = sectionKeys(config, keys);
  const { section } = syntax;
  if (section === undefined) return readLines(text, file, syntax, null, () => table).get('') ?? new Map();
  const sections = readLines(text, file, syntax, section, (name, where) => {
    if (name !== section) throw new ConfigError(`${where}: unknown section [${name}]; this file has only [${section}]`);
    return table;
  });
  return sections.get(section) ?? new Map();
}

/** Where one section's keys go: the names it knows and a setter per name. */
export interface SectionKeys {
  known: string[];
  setter(key: string): ((value: string) => void) | undefined;
}

/** A section's table of setters, bound to the object they set. */
export function sectionKeys<C>(config: C, keys: Record<string, Setter<C>>): SectionKeys {
  return {
    known: Object.keys(keys),
    setter: (key) => (Object.hasOwn(keys, key) ? (value) => keys[key](config, value) : undefined),
  };
}

/**
 * A file of several "[name]" sections, each with its own keys: open() is
 * called once per section line and says where that section's keys go, or
 * throws the ConfigError for a section the file may not have. A key above
 * every section line is refused as one that belongs below [first]. Returns,
 * per section name, the line each of its keys was set on.
 */
export function applyConfigSections(
  text: string,
  file: string,
  syntax: Omit<ConfigSyntax, 'section'> & { first: string },
  open: (name: string, where: string) => SectionKeys,
): Map<string, Map<string, number>> {
  return readLines(text, file, syntax, syntax.first, open);
}

/** The loop both share; first === null: a file without sections, whose keys are all in section ''. */
function readLines(
  text: string,
  file: string,
  syntax: Omit<ConfigSyntax, 'section'>,
  first: string | null,
  open: (name: string, where: string) => SectionKeys,
): Map<string, Map<string, number>> {
  const sections = new Map<string, { line: number; seen: Map<string, number> }>();
  let current: { keys: SectionKeys; seen: Map<string, number> } | null = first === null ? { keys: open('', file), seen: new Map() } : null;
  if (current) sections.set('', { line: 0, seen: current.seen });
  text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .forEach((raw, i) => {
      let line = raw.trim();
      if (line === '' || syntax.comments.includes(line[0])) return;
      const where = `${file}, line ${i + 1}`;
      if (syntax.trailingComments) line = line.replace(new RegExp(`\\s+[${syntax.comments}].*$`), '');
      const header = /^\[(.*)\]$/.exec(line);
      if (header && first !== null) {
        const name = header[1].trim();
        const keys = open(name, where);
        const earlier = sections.get(name);
        if (earlier) throw new ConfigError(`${where}: [${name}] already starts on line ${earlier.line}`);
        current = { keys, seen: new Map() };
        sections.set(name, { line: i + 1, seen: current.seen });
        return;
      }
      const eq = line.indexOf('=');
      if (eq < 0) throw new ConfigError(`${where}: expected "key = value", got "${line}"`);
      const key = line.slice(0, eq).trim();
      const value = line.slice(eq + 1).trim();
      if (!current) throw new ConfigError(`${where}: "${key}" comes before the [${first}] line; put it below`);
      const { keys, seen } = current;
      const set = keys.setter(key);
      if (!set) throw new ConfigError(`${where}: unknown key "${key}" (known: ${keys.known.join(', ')})`);
      if (seen.has(key)) throw new ConfigError(`${where}: "${key}" is already set on line ${seen.get(key)}`);
      seen.set(key, i + 1);
      try {
        set(value);
      } catch (err) {
        if (!(err instanceof ValueError)) throw err;
        throw new ConfigError(err.hideValue ? `${where}: bad ${key}: ${err.message}` : `${where}: bad ${key} "${value}": ${err.message}`);
      }
    });
  return new Map([...sections].map(([name, s]) => [name, s.seen]));
}

/** The text of a configuration file, or a ConfigError naming it. */
export function readConfigText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

// Value checks more than one file uses; each throws a ValueError that says what to write instead.

export function wholeNumber(min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) throw new ValueError(`use a whole number from ${min} to ${max}`);
    return n;
  };
}

export function absolutePath(v: string): string {
  if (!v.startsWith('/')) throw new ValueError('use an absolute path');
  return v;
}

export function logLevel(v: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(v)) throw new ValueError(`use ${LOG_LEVELS.join(', ')}`);
  return v as LogLevel;
}

/** A check that returns a problem or null (the spool's suffixProblem, gatewayNameProblem) as a value check. */
export function checkedBy(problemOf: (v: string) => string | null): (v: string) => string {
  return (v) => {
    const problem = problemOf(v);
    // The problem may start by quoting the value, which the ConfigError quotes already.
    if (problem) throw new ValueError(problem.replace(/^"[^"]*":? /, ''));
    return v;
  };
}
