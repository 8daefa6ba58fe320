// The exporter's settings check throws a typed error naming the setting as
// the program received it; which exit code that is, is the program's affair.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_PORT, SettingsError, checkExportSettings } from '../../src/export/settings';

const asOption = (key: string) => `--${key}`;

describe('export settings', () => {
  it('defaults what is not given', () => {
    const s = checkExportSettings({ host: 'archive.example.org' }, asOption);
    assert.deepEqual([s.port, s.starttls, s.connections, s.timeoutMs, s.suffix], [DEFAULT_PORT, 'opportunistic', 4, 60_000, '.eml']);
  });

  it('a bad value is a SettingsError naming it', () => {
    const bad = (raw: Parameters<typeof checkExportSettings>[0], message: string) =>
      assert.throws(() => checkExportSettings(raw, asOption), (e: Error) => e instanceof SettingsError && e.message === message);
    bad({ host: 'x', port: 'http' }, 'bad --port: "http" is not a whole number from 1 to 65535');
    bad({ host: 'a b' }, 'bad --host: "a b" is not a host name or address');
    bad({ host: 'x', user: 'u' }, 'bad --passwordFile: user and password file go together');
  });
});
