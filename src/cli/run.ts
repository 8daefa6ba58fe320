// Shared by every program: version, and the rule that a fatal error is one
// line on stderr naming the problem, with a sysexits.h exit code.

import * as fs from 'node:fs';
import * as path from 'node:path';
import yargs, { Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { EX_SOFTWARE, EX_USAGE, Fatal } from './sysexits';

export function packageVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8'));
  return String(pkg.version);
}

export function fail(program: string, message: string, exitCode: number): never {
  process.stderr.write(`${program}: ${message}\n`);
  process.exit(exitCode);
}

export function runMain(program: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof Fatal) fail(program, err.message, err.exitCode);
    fail(program, `internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`, EX_SOFTWARE);
  });
}

/**
 * The command line as every program reads it: -h/--help and -V/--version,
 * option names exactly as written (no camelCase twins, no --no-X
 * negations), unknown options refused, and any mistake one line on stderr
 * with exit 64. Programs add their options and call parseSync().
 */
export function commandLine(program: string, usage: string, epilog: string, options: { positionals?: boolean } = {}): Argv {
  const y = yargs(hideBin(process.argv))
    .scriptName(program)
    .usage(usage)
    .epilog(epilog)
    .alias('h', 'help')
    .alias('V', 'version')
    .version(packageVersion())
    .wrap(Math.min(100, process.stdout.columns || 100))
    .parserConfiguration({ 'camel-case-expansion': false, 'boolean-negation': false })
    // yargs spreads some complaints ("Invalid values:") over lines: one line, as every mistake is.
    .fail((message, err) => fail(program, `${String(message ?? err?.message).replace(/\s*\n\s*/g, ' ')} (try --help)`, EX_USAGE));
  return options.positionals ? y.strictOptions() : y.strict();
}

/** Options that take one value must not be given twice (yargs would make an array of them). */
export function rejectRepeated(program: string, args: Record<string, unknown>, names: string[]): void {
  for (const name of names) if (Array.isArray(args[name])) fail(program, `--${name} given more than once`, EX_USAGE);
}

/** stdin held more than the reader takes. */
export class StdinTooLarge extends Error {
  constructor(readonly maxBytes: number) {
    super(`more than ${maxBytes} bytes on stdin`);
  }
}

/** Everything on stdin, as bytes; past maxBytes it stops reading and rejects with StdinTooLarge. */
export function readStdin(maxBytes = Infinity): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    process.stdin.on('data', (d: Buffer) => {
      size += d.length;
      if (size <= maxBytes) return void chunks.push(d);
      process.stdin.destroy();
      reject(new StdinTooLarge(maxBytes));
    });
    process.stdin.on('end', () => resolve(Buffer.concat(chunks)));
    process.stdin.on('error', reject);
  });
}

/** The first line, without its line end: what a password file or a password on stdin holds. */
export function firstLine(b: Buffer): Buffer {
  const lf = b.indexOf(0x0a);
  const line = lf < 0 ? b : b.subarray(0, lf);
  return line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line;
}
