// What each Debian package ships of the program (scripts/package-closure):
// the milter's and the receiver's packages carry no IMAP library, the scan
// sees every require of ours, and npm packages resolve as Node resolves them.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { codeClosure, packageClosure, packageOf, requiredNames } from '../../scripts/package-closure';
import { ROOT } from '../helpers/daemon';
import { removeTree, tempDir } from '../helpers/fs';

const cli = (...programs: string[]) => programs.map((p) => `dist/src/cli/${p}.js`);
const IMAP_LIBRARIES = ['imapflow', 'sql.js', 'mysql2'];

function allFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? allFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

describe('package-closure: what a package ships', () => {
  it('benno-milter and benno-smtp reach no IMAP library and none of the IMAP import; benno-imap reaches all three', () => {
    const milter = codeClosure(ROOT, cli('benno-milter', 'benno-milter2smtp', 'benno-export2archive', 'benno-milter-admin'));
    const smtp = codeClosure(ROOT, cli('benno-smtp'));
    const imap = codeClosure(ROOT, cli('benno-imapsync', 'benno-imapuser', 'benno-imapimport', 'benno-pop3', 'benno-imapauth'));
    for (const c of [milter, smtp]) {
      assert.deepEqual(c.packages.filter((p) => IMAP_LIBRARIES.includes(p)), []);
      assert.deepEqual(c.files.filter((f) => /\/(imap|pop3)\//.test(f)), []);
      assert.ok(c.packages.includes('yargs') && c.packages.includes('winston'));
    }
    assert.ok(milter.files.includes('dist/src/milter/server.js') && milter.files.includes('dist/src/export/exporter.js'));
    assert.ok(smtp.packages.includes('smtp-server'));
    for (const lib of IMAP_LIBRARIES) assert.ok(imap.packages.includes(lib), lib);
    // Everything npm installs for the milter is in its closure, and nothing of the IMAP import's.
    const dirs = packageClosure(ROOT, milter.packages);
    assert.ok(dirs.includes('node_modules/logform'), 'dependencies of dependencies');
    assert.deepEqual(dirs.filter((d) => IMAP_LIBRARIES.some((l) => d.endsWith(`node_modules/${l}`))), []);
  });

  it('every require in the compiled program names its module literally, so the scan misses nothing', () => {
    const files = allFiles(path.join(ROOT, 'dist', 'src')).filter((f) => f.endsWith('.js'));
    assert.ok(files.length > 50);
    for (const f of files) {
      const source = fs.readFileSync(f, 'utf8');
      const calls = source.match(/\brequire\(/g)?.length ?? 0;
      assert.equal(requiredNames(source).length, calls, `${path.relative(ROOT, f)}: a require() by a computed name`);
    }
  });

  it('module names: a path inside a package, a scoped package, relative files', () => {
    assert.deepEqual(requiredNames(`const a = require("mysql2/promise"); const b = require('./x'); require("node:fs")`), ['mysql2/promise', './x', 'node:fs']);
    assert.equal(packageOf('mysql2/promise'), 'mysql2');
    assert.equal(packageOf('@colors/colors/safe'), '@colors/colors');
    assert.equal(packageOf('yargs'), 'yargs');
  });

  describe('npm packages, resolved as Node resolves them', () => {
    const stage = tempDir();
    after(() => removeTree(stage));
    const install = (dir: string) => {
      fs.mkdirSync(path.join(stage, dir), { recursive: true });
      fs.writeFileSync(path.join(stage, dir, 'package.json'), '{}');
    };
    // a needs b@2 (nested under a) and c; c needs b@1 (the top one) and optionally d (not installed);
    // c's peer @types/x is installed but never shipped.
    for (const d of ['node_modules/a', 'node_modules/a/node_modules/b', 'node_modules/b', 'node_modules/c', 'node_modules/@types/x', 'node_modules/unused']) install(d);
    fs.writeFileSync(
      path.join(stage, 'package-lock.json'),
      JSON.stringify({
        packages: {
          'node_modules/a': { dependencies: { b: '2', c: '1' } },
          'node_modules/a/node_modules/b': {},
          'node_modules/b': {},
          'node_modules/c': { dependencies: { b: '1' }, optionalDependencies: { d: '1' }, peerDependencies: { '@types/x': '1' } },
        },
      }),
    );

    it('a nested copy first, then up the tree; a missing optional one is left out, type declarations too', () => {
      assert.deepEqual(packageClosure(stage, ['a']), ['node_modules/a', 'node_modules/a/node_modules/b', 'node_modules/b', 'node_modules/c']);
      assert.deepEqual(packageClosure(stage, ['b']), ['node_modules/b']);
    });

    it('a dependency that is not installed is an error naming who needs it', () => {
      fs.rmSync(path.join(stage, 'node_modules', 'c'), { recursive: true });
      assert.throws(() => packageClosure(stage, ['a']), /node_modules\/a needs c, which is not installed/);
    });
  });
});
