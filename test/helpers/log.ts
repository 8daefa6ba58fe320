// A Logger for code under test whose log lines are not what the test is about.

import type { Logger } from '../../src/ops/log';

/** Drops every line. */
export function quietLogger(): Logger {
  const drop = () => undefined;
  return { error: drop, warn: drop, info: drop, debug: drop } as unknown as Logger;
}
