// benno-imapsync --verify: proves, per account and folder, that every
// message the sync has passed is in the archive, by comparing the server's
// UIDs with the sync's record of each message (the inbox cannot tell: Benno
// empties it as it imports).
//
// On the wire: LIST with STATUS (MESSAGES, UIDNEXT, UIDVALIDITY); per folder
// with a stored state or records, EXAMINE and one UID SEARCH UID 1:N. Never
// a FETCH, nothing that writes. The database is only read: what it holds
// was saved in one transaction with the mark, so a sync running at the same
// time cannot make a message below the mark look unrecorded.

import type { ImapFlow, ListResponse } from 'imapflow';
import { ArchiveRecords, StoredFolderState, StoredMessageRecord } from './store';
import { FolderChoice } from './folders';
import { ReadOptions, withReadSession } from './sync';

export type GapKind =
  /** On the server at or below the mark, with no record of a file. */
  | 'no-record'
  /** The import failed; the next sync tries again while the server still has it. */
  | 'failed'
  /** Passed as expunged, but the server has it. */
  | 'expunged-but-present';

export interface Gap {
  /** Decoded name, for people. */
  folder: string;
  uidValidity: number;
  uid: number;
  kind: GapKind;
  /** What the record says (the failure), or null. */
  reason: string | null;
  /** When the record was written, or null without one. */
  recorded: Date | null;
  /** Whether the server still has the message. */
  onServer: boolean;
}

export type VerifiedStatus =
  /** Compared UID by UID. */
  | 'checked'
  /** The exclude list keeps it out of the archive. */
  | 'excluded'
  /** No stored state yet: the next sync imports all of it. */
  | 'new'
  /** Its UIDVALIDITY is not the stored one: the next sync imports all of it again. */
  | 'uidvalidity-changed';

export interface VerifiedFolder {
  folder: string;
  /** The state key (modified UTF-7). */
  key: string;
  status: VerifiedStatus;
  /** Why it is excluded, or why the UIDs cannot be compared. */
  reason: string | null;
  /** The server's UIDVALIDITY, or null when not known. */
  uidValidity: number | null;
  /** The highest UID the sync has passed (the stored one, for the same UIDVALIDITY), else 0. */
  mark: number;
  /** Messages on the server now, or null when it would not say. */
  messages: number | null;
  /** At or below the mark, with a record of the file they were archived in. */
  archived: number;
  /** At or below the UID the folder had reached when this database began keeping records: archived, but without a record to show. */
  beforeRecords: number;
  /** Above the mark: the next sync takes them. */
  pending: number;
  gaps: number;
}

export interface AccountVerification {
  /** USER@HOST */
  account: string;
  folders: VerifiedFolder[];
  gaps: Gap[];
  /** Messages in excluded folders, which the sync never sees. */
  excludedMessages: number;
}

type ListedStatus = NonNullable<ListResponse['status']>;

function blank(choice: FolderChoice, status: VerifiedStatus, reason: string | null, listed: ListedStatus | undefined): VerifiedFolder {
  return {
    folder: choice.path,
    key: choice.key,
    status,
    reason,
    uidValidity: listed?.uidValidity === undefined ? null : Number(listed.uidValidity),
    mark: 0,
    messages: listed?.messages ?? null,
    archived: 0,
    beforeRecords: 0,
    pending: 0,
    gaps: 0,
  };
}

/**
 * What the account's folders hold that the records cannot account for.
 * Rejects with a SyncError when the account cannot be verified: the
 * server cannot be reached, refuses the login, or refuses to open or search
 * a folder (like the sync, which then fails the account).
 */
export function verifyAccount(options: ReadOptions & { records: ArchiveRecords }): Promise<AccountVerification> {
  const who = `${options.account.user}@${options.account.host}`;
  const states = new Map(options.records.folders.map((s) => [s.folder, s]));
  const byFolder = new Map<string, StoredMessageRecord[]>();
  for (const r of options.records.messages) {
    const list = byFolder.get(r.folder) ?? [];
    list.push(r);
    byFolder.set(r.folder, list);
  }
  return withReadSession(options, async (client, choose) => {
    const list = await client.list({ statusQuery: { messages: true, uidNext: true, uidValidity: true } });
    const status = new Map(list.map((f) => [f.path, f]));
    const out: AccountVerification = { account: who, folders: [], gaps: [], excludedMessages: 0 };
    for (const choice of choose(list)) {
      const listed = status.get(choice.path);
      if (choice.excluded) {
        // A \Noselect name holds no messages: nothing the exclude list costs.
        if ([...(listed?.flags ?? [])].some((f) => /^\\(noselect|nonexistent)$/i.test(f))) continue;
        const f = blank(choice, 'excluded', choice.excluded, listed?.status);
        out.folders.push(f);
        out.excludedMessages += f.messages ?? 0;
        continue;
      }
      const state = states.get(choice.key);
      const records = byFolder.get(choice.key) ?? [];
      if (!state && records.length === 0) {
        const f = blank(choice, 'new', null, listed?.status);
        f.pending = f.messages ?? 0;
        out.folders.push(f);
        continue;
      }
      out.folders.push(await checkFolder(client, choice, state, records, out.gaps));
    }
    return out;
  });
}

async function checkFolder(
  client: ImapFlow,
  choice: FolderChoice,
  state: StoredFolderState | undefined,
  records: StoredMessageRecord[],
  gaps: Gap[],
): Promise<VerifiedFolder> {
  const mailbox = await client.mailboxOpen(choice.path, { readOnly: true });
  const uidValidity = Number(mailbox.uidValidity);
  const f: VerifiedFolder = { ...blank(choice, 'checked', null, undefined), uidValidity, messages: mailbox.exists };
  if (state && state.uidValidity !== uidValidity) {
    return { ...f, status: 'uidvalidity-changed', reason: `stored UIDVALIDITY ${state.uidValidity}, the server's ${uidValidity}`, pending: mailbox.exists };
  }
  f.mark = state?.lastUid ?? 0;
  const mine = new Map(records.filter((r) => r.uidValidity === uidValidity).map((r) => [r.uid, r]));
  const failed = [...mine.values()].filter((r) => r.outcome === 'failed');
  // Failed UIDs lie above the mark: the search reaches them too, to say whether the server still has them.
  const top = Math.max(f.mark, ...failed.map((r) => r.uid));
  const onServer = top === 0 ? [] : ((await client.search({ uid: `1:${top}` }, { uid: true })) || []);
  const present = new Set(onServer);
  const legacyTop = state?.legacy && state.legacy.uidValidity === uidValidity ? state.legacy.lastUid : 0;
  const gap = (uid: number, kind: GapKind, r: StoredMessageRecord | undefined) => {
    gaps.push({ folder: choice.path, uidValidity, uid, kind, reason: r?.reason ?? null, recorded: r?.updated ?? null, onServer: present.has(uid) });
    f.gaps++;
  };
  let atOrBelow = 0;
  for (const uid of [...present].sort((a, b) => a - b)) {
    if (uid > f.mark) continue;
    atOrBelow++;
    const r = mine.get(uid);
    if (r?.outcome === 'archived') f.archived++;
    else if (!r && uid <= legacyTop) f.beforeRecords++;
    else if (r?.outcome === 'expunged') gap(uid, 'expunged-but-present', r);
    // A failure at or below the mark would be a bug of the sync's; it is reported below with the others.
    else if (!r) gap(uid, 'no-record', r);
  }
  for (const r of failed) gap(r.uid, 'failed', r);
  f.pending = Math.max(0, mailbox.exists - atOrBelow);
  return f;
}
