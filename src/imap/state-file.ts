// The state files of the one-time imports, which have no accounts database:
// benno-imapimport keeps each folder's UIDVALIDITY and highest archived UID
// in one (FolderStateFile, the sync engine's FolderStateStore), benno-pop3
// the UIDLs it has archived. One JSON object per file, naming the program
// and the mailbox it belongs to, so that a file given for another mailbox is
// refused instead of skipping that mailbox's mail. Every save replaces the
// file durably (temp, fsync, rename, directory fsync): a run killed at any
// moment leaves the last saved state whole, and the next run resumes there.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { replaceFileDurably } from '../ops/durable-file';
import { FolderState, MessageRecord, StoreError } from './store';
import type { FolderStateStore } from './sync';

/** Where the state files go when the command line names none. */
export const DEFAULT_STATE_DIR = '/var/lib/benno-imap';

/** The default state file of program for USER@HOST, as a file name that no user or host name can lead out of the directory. */
export function defaultStateFile(program: string, mailbox: string, dir = DEFAULT_STATE_DIR): string {
  const safe = Buffer.from(mailbox, 'utf8').reduce((out, c) => out + (/[A-Za-z0-9@._-]/.test(String.fromCharCode(c)) ? String.fromCharCode(c) : `%${c.toString(16).padStart(2, '0').toUpperCase()}`), '');
  return path.join(dir, `${program}-${safe.replace(/^\./, '%2E')}.state`);
}

export type StateFileProblem =
  /** The file belongs to another program or mailbox. */
  | 'foreign'
  /** It is no state file of ours (or damaged). */
  | 'corrupt'
  /** It cannot be read. */
  | 'io';

/** A state file that cannot be used as it is; the message names it and says why. */
export class StateFileError extends Error {
  constructor(
    readonly problem: StateFileProblem,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StateFileError';
  }
}

interface Stored<T> {
  program: string;
  mailbox: string;
  updated: string;
  state: T;
}

export class StateFile<T> {
  constructor(
    readonly file: string,
    private readonly program: string,
    /** USER@HOST. */
    private readonly mailbox: string,
    /** The state inside a parsed file, or null when it is not of the expected shape. */
    private readonly validate: (state: unknown) => T | null,
  ) {}

  /** The saved state, or null before the first save. */
  load(): T | null {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      throw new StateFileError('io', `cannot read the state file ${this.file}: ${code ?? (err as Error).message}`, { cause: err });
    }
    let stored: Partial<Stored<unknown>>;
    try {
      stored = JSON.parse(text);
    } catch {
      stored = {};
    }
    const state = stored && typeof stored === 'object' && 'state' in stored ? this.validate(stored.state) : null;
    if (typeof stored?.program !== 'string' || typeof stored.mailbox !== 'string' || state === null) {
      throw new StateFileError('corrupt', `${this.file} is not a state file of ${this.program}; remove it, or name another with --state`);
    }
    if (stored.program !== this.program || stored.mailbox !== this.mailbox) {
      throw new StateFileError('foreign', `the state file ${this.file} belongs to ${stored.program} for ${stored.mailbox}, not to ${this.program} for ${this.mailbox}; name another with --state`);
    }
    return state;
  }

  /** Replaces the file with this state, durably. A failure is a StoreError naming the file and the system's error code. */
  save(state: T): void {
    const stored: Stored<T> = { program: this.program, mailbox: this.mailbox, updated: new Date().toISOString(), state };
    try {
      replaceFileDurably(this.file, Buffer.from(`${JSON.stringify(stored)}\n`, 'utf8'));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new StoreError('database', `cannot write the state file ${this.file}: ${e.code ?? e.message}`, { cause: err });
    }
  }
}

type Folders = Record<string, { uidValidity: number; lastUid: number }>;

const isUid = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;

function folders(state: unknown): Folders | null {
  const f = (state as { folders?: unknown } | null)?.folders;
  if (!f || typeof f !== 'object' || Array.isArray(f)) return null;
  for (const v of Object.values(f as Record<string, unknown>)) {
    const s = v as { uidValidity?: unknown; lastUid?: unknown } | null;
    if (!s || !isUid(s.uidValidity) || !isUid(s.lastUid)) return null;
  }
  return f as Folders;
}

/** benno-imapimport's folder states in its state file: what the accounts database is to benno-imapsync. */
export class FolderStateFile implements FolderStateStore {
  private readonly file: StateFile<{ folders: Folders }>;
  private readonly folders: Map<string, FolderState>;

  /** Reads the file at once: a StateFileError here means the run must not start. */
  constructor(file: string, program: string, mailbox: string) {
    this.file = new StateFile(file, program, mailbox, (s) => {
      const f = folders(s);
      return f ? { folders: f } : null;
    });
    const saved = this.file.load()?.folders ?? {};
    this.folders = new Map(Object.entries(saved).map(([folder, s]) => [folder, { folder, ...s }]));
  }

  async folderStates(): Promise<readonly FolderState[]> {
    return [...this.folders.values()];
  }

  /**
   * The message records are not kept: a one-time import has no --verify,
   * and a state file rewritten whole with every record in it would make a
   * large import slower with every save.
   */
  async saveFolderStates(_accountId: number, states: readonly FolderState[], _records: readonly MessageRecord[]): Promise<void> {
    const next = new Map(this.folders);
    for (const s of states) next.set(s.folder, { ...s });
    this.file.save({ folders: Object.fromEntries([...next.values()].map((s) => [s.folder, { uidValidity: s.uidValidity, lastUid: s.lastUid }])) });
    // Only what is on disk counts as saved.
    for (const [k, v] of next) this.folders.set(k, v);
  }
}
