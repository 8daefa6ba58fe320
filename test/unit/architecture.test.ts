// docs/ARCHITECTURE.md's rules, checked against the source: every import in
// src/ is allowed by the table there, only src/spool/ lists a spool
// directory, and only src/cli/ ends the process.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/daemon';

const SRC = path.join(ROOT, 'src');

/** folder → the folders it may import, from the table in docs/ARCHITECTURE.md. */
function allowedImports(): Map<string, Set<string>> {
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8');
  const table = doc.slice(doc.indexOf('| folder | may import |'));
  const rules = new Map<string, Set<string>>();
  for (const line of table.split('\n').slice(2)) {
    const m = /^\|\s*([a-z0-9-]+)\s*\|\s*([a-z0-9, -]*?)\s*\|$/.exec(line);
    if (!m) break;
    rules.set(m[1], new Set(m[2].split(',').map((s) => s.trim()).filter(Boolean)));
  }
  return rules;
}

function sources(): { folder: string; file: string; text: string }[] {
  return fs
    .readdirSync(SRC, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) =>
      fs
        .readdirSync(path.join(SRC, d.name))
        .filter((f) => f.endsWith('.ts'))
        .map((f) => ({ folder: d.name, file: `${d.name}/${f}`, text: fs.readFileSync(path.join(SRC, d.name, f), 'utf8') })),
    );
}

/** The src/ folders a file's relative imports reach. */
function importedFolders(folder: string, text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import\(|require\()\s*'(\.{1,2}\/[^']+)'/g)) {
    const target = path.relative(SRC, path.resolve(SRC, folder, m[1]));
    const top = target.split(path.sep)[0];
    if (top !== folder) out.push(top);
  }
  return out;
}

describe('architecture (docs/ARCHITECTURE.md)', () => {
  const rules = allowedImports();
  const files = sources();

  it('the table names every folder of src/', () => {
    // Every row up to cli, the last: a folder name the pattern missed would end the table early.
    assert.ok(rules.has('cli') && rules.has('pop3'), 'the whole table was read');
    assert.deepEqual([...new Set(files.map((f) => f.folder))].sort(), [...rules.keys()].sort());
  });

  it('every import between folders is allowed by the table', () => {
    const wrong = files.flatMap(({ folder, file, text }) =>
      importedFolders(folder, text)
        .filter((to) => !rules.get(folder)?.has(to))
        .map((to) => `${file} imports ${to}/`),
    );
    assert.deepEqual(wrong, []);
  });

  it('only src/spool/ lists a directory; only src/cli/ ends the process', () => {
    // Files that list a directory that is no spool, named one by one.
    const notSpool = new Set(['admin/imap-doctor.ts' /* /etc/benno-web/auth.d */, 'admin/audit-sources.ts' /* /var/log: the rotated mail logs */]);
    const wrong = files.flatMap(({ folder, file, text }) => [
      ...(folder !== 'spool' && !notSpool.has(file) && /\breaddir(Sync)?\(/.test(text) ? [`${file} lists a directory`] : []),
      ...(folder !== 'cli' && /\bprocess\.exit\b/.test(text) ? [`${file} ends the process`] : []),
    ]);
    assert.deepEqual(wrong, []);
  });
});
