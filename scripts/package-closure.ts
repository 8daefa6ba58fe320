// What one Debian package must ship of the staged program: the compiled
// files its programs reach through require(), and the npm packages those
// reach, with theirs (after package-lock.json and the staged node_modules).
// benno-milter and benno-smtp run on the mail server and the archive host;
// the IMAP import's libraries (imapflow, sql.js, mysql2) have no business
// there. A static scan is enough: tsc writes every import as require("…")
// with a literal name, and the code itself requires nothing by a computed
// one (a unit test holds it to that).
//
// Usage: node dist/scripts/package-closure.js STAGE ENTRY...
// prints every path to ship, relative to STAGE, one a line: the compiled
// files, then the npm packages' directories.

import * as fs from 'node:fs';
import { builtinModules } from 'node:module';
import * as path from 'node:path';

const REQUIRE = /\brequire\((["'])([^"'\n]+)\1\)/g;

/** The literal names a compiled file requires. */
export function requiredNames(source: string): string[] {
  return [...source.matchAll(REQUIRE)].map((m) => m[2]);
}

/** The npm package a bare module name is in: 'mysql2/promise' → 'mysql2', '@scope/x/y' → '@scope/x'. */
export function packageOf(name: string): string {
  const parts = name.split('/');
  return name.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function resolveLocal(from: string, name: string): string {
  const base = path.resolve(path.dirname(from), name);
  for (const candidate of [base, `${base}.js`, path.join(base, 'index.js')]) {
    if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
  }
  throw new Error(`${from}: require('${name}') names no file`);
}

export interface Closure {
  /** Compiled files of ours, relative to the stage. */
  files: string[];
  /** npm packages by name, as required by our files (before their own dependencies). */
  packages: string[];
}

/** Our compiled files reachable from the entries (paths relative to stage), and the npm packages they require. */
export function codeClosure(stage: string, entries: string[]): Closure {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const todo = entries.map((e) => path.resolve(stage, e));
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    if (!fs.existsSync(file)) throw new Error(`${path.relative(stage, file)}: no such file in the stage`);
    seen.add(file);
    for (const name of requiredNames(fs.readFileSync(file, 'utf8'))) {
      if (name.startsWith('.')) todo.push(resolveLocal(file, name));
      else if (!name.startsWith('node:')) packages.add(packageOf(name));
    }
  }
  // Builtins required without node: (tsc keeps what the source wrote) are not npm packages.
  const builtins = new Set(builtinModules);
  return {
    files: [...seen].map((f) => path.relative(stage, f)).sort(),
    packages: [...packages].filter((p) => !builtins.has(p)).sort(),
  };
}

interface LockEntry {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

/**
 * The directories (relative to the stage, 'node_modules/…') of these npm
 * packages and of everything they depend on, resolved as Node resolves them:
 * a nested node_modules first, then up the tree. An optional or peer
 * dependency that is not installed is left out, as Node would not find it;
 * so are type declarations.
 */
export function packageClosure(stage: string, names: string[]): string[] {
  const lock = JSON.parse(fs.readFileSync(path.join(stage, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const installed = (dir: string) => fs.existsSync(path.join(stage, dir, 'package.json'));
  const resolve = (from: string, name: string): string | null => {
    // from is '' (the program) or 'node_modules/a/node_modules/b'.
    for (let at = from; ; ) {
      const candidate = `${at ? `${at}/` : ''}node_modules/${name}`;
      if (installed(candidate)) return candidate;
      if (!at) return null;
      const cut = at.lastIndexOf('/node_modules/');
      at = cut < 0 ? '' : at.slice(0, cut);
    }
  };
  const out = new Set<string>();
  const todo: [string, string, boolean][] = names.map((n) => ['', n, false]);
  while (todo.length > 0) {
    const [from, name, optional] = todo.pop()!;
    const dir = resolve(from, name);
    if (dir === null) {
      if (optional) continue;
      throw new Error(`${from || 'the program'} needs ${name}, which is not installed in the stage`);
    }
    // Type declarations (a peer dependency of mysql2, a dependency of logform) are never loaded.
    if (out.has(dir) || name.startsWith('@types/')) continue;
    out.add(dir);
    const entry = lock.packages[dir] ?? {};
    for (const d of Object.keys(entry.dependencies ?? {})) todo.push([dir, d, false]);
    for (const d of Object.keys({ ...entry.optionalDependencies, ...entry.peerDependencies })) todo.push([dir, d, true]);
  }
  return [...out].sort();
}

function main(argv: string[]): number {
  const [stage, ...entries] = argv;
  if (!stage || entries.length === 0) {
    process.stderr.write('usage: package-closure STAGE ENTRY...\n');
    return 64;
  }
  try {
    const code = codeClosure(stage, entries);
    const lines = ['package.json', ...code.files, ...packageClosure(stage, code.packages)];
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`package-closure: ${(err as Error).message}\n`);
    return 65;
  }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
