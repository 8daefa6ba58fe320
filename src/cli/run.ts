// Shared by every program: version, and the rule that a fatal error is one
// line on stderr naming the problem, with a sysexits.h exit code.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { EX_SOFTWARE, Fatal } from '../ops/sysexits';

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
