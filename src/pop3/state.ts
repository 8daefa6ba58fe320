// benno-pop3's state file: the UIDLs of the messages whose files are durable
// in the inbox. POP3 has no UIDVALIDITY and no order of UIDs, so the state
// is the set itself (a UIDL is unique and stays with its message, RFC 1939
// 7). UIDLs of messages no longer on the server are dropped at the next
// save, so the file does not grow with mail deleted long ago.

import { StateFile } from '../imap/state-file';

/** RFC 1939 7: 1 to 70 characters from 0x21 to 0x7E. */
export function isUidl(s: string): boolean {
  return /^[\x21-\x7e]{1,70}$/.test(s);
}

export class UidlStateFile {
  private readonly file: StateFile<{ uidls: string[] }>;
  /** What the file held when it was read. */
  readonly saved: ReadonlySet<string>;

  /** Reads the file at once: a StateFileError here means the run must not start. */
  constructor(file: string, program: string, mailbox: string) {
    this.file = new StateFile(file, program, mailbox, (s) => {
      const uidls = (s as { uidls?: unknown } | null)?.uidls;
      return Array.isArray(uidls) && uidls.every((u) => typeof u === 'string' && isUidl(u)) ? { uidls: uidls as string[] } : null;
    });
    this.saved = new Set(this.file.load()?.uidls ?? []);
  }

  get path(): string {
    return this.file.file;
  }

  /** Replaces the file with these UIDLs, durably; a StoreError when it cannot be written. */
  save(uidls: Iterable<string>): void {
    this.file.save({ uidls: [...uidls] });
  }
}
